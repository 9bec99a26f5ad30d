/**
 * Error classes shared by every layer. Each has a stable `name` so that Step Functions
 * Retry/Catch, the CLI and the API can tell them apart, and a message that says what was
 * wrong and how to fix it.
 */
export class EsmError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad user input: a flag, a body field, a file line. `field` names what to fix. */
export class ValidationError extends EsmError {
  /** What was wrong and the fix: `message` without its `field: ` prefix. */
  readonly detail: string;

  constructor(
    readonly field: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${field}: ${message}`, options);
    this.detail = message;
  }

  /**
   * The same class of error for another field or detail, with this one as its cause (the API
   * names a request field, `space` -> `body.space`; a hint is added). For classes whose
   * constructor takes `(field, message)`; DatasetFormatError's does not.
   */
  restated(field: string, detail: string): ValidationError {
    const Class = this.constructor as new (
      field: string,
      message: string,
      options?: { cause?: unknown },
    ) => ValidationError;
    return new Class(field, detail, { cause: this });
  }
}

/** An architecture that is not a member of its search space. */
export class ArchValidationError extends ValidationError {}

/** A space name or spec file that cannot be resolved. */
export class UnknownSpaceError extends ValidationError {}

/** A dataset file with a malformed line; `line` is 1-based. */
export class DatasetFormatError extends ValidationError {
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}:${line}`, message, options);
  }
}

/** Measurements whose reference models drifted more than the allowed variation. */
export class UnstableDeviceError extends EsmError {}

/** A device that did not answer a measurement batch in time. */
export class MeasurementTimeoutError extends EsmError {}

/** A predictor whose features the arch-in graph cannot compute yet (it ships predictor.onnx alone). */
export class ArchGraphUnsupportedError extends ValidationError {}
