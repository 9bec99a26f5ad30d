/**
 * The state machine definition's structure: the loop's transitions, Retry only on transient
 * errors, a Catch to MarkFailed on every task, and nothing but ids in the payloads (the
 * behaviour itself runs in e2e.test.ts).
 */
import { StateMachine } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import { functions } from '../../lambdas/manifest.ts';
import {
  buildDefinition,
  permanentErrors,
  states,
  taskOfState,
  transientErrors,
  workflowTasks,
} from '../../lambdas/workflow/definition.ts';
import '../support/local-sfn.ts';

const arns = Object.fromEntries(
  workflowTasks.map((t) => [t, `arn:aws:lambda:eu-west-1:123456789012:function:esm-${t}`]),
) as Record<(typeof workflowTasks)[number], string>;
const definition = buildDefinition(arns, { pollSeconds: 45 });
type AnyState = Record<string, unknown> & { Type: string };
const all = definition.States as unknown as Record<string, AnyState>;

describe('buildDefinition', () => {
  it('is valid ASL by aws-local-stepfunctions (ARNs and paths checked)', () => {
    expect(() => new StateMachine(definition as never)).not.toThrow();
  });

  it('wires the ESM loop: init, dispatch, poll, train, decide, extend', () => {
    expect(definition.StartAt).toBe(states.init);
    expect(all[states.init]?.Next).toBe(states.dispatch);
    expect(all[states.dispatch]?.Next).toBe(states.wait);
    expect(all[states.wait]).toMatchObject({ Type: 'Wait', Seconds: 45, Next: states.collect });
    expect(all[states.batchDone]).toMatchObject({
      Type: 'Choice',
      Default: states.wait,
      Choices: [
        { Variable: '$.batch', StringEquals: 'complete', Next: states.train },
        { Variable: '$.batch', StringEquals: 'redispatch', Next: states.dispatch },
      ],
    });
    expect(all[states.done]).toMatchObject({
      Default: states.extend,
      Choices: [{ Variable: '$.done', BooleanEquals: true, Next: states.succeeded }],
    });
    expect(all[states.extend]?.Next).toBe(states.dispatch);
    expect(all[states.markFailed]?.Next).toBe(states.failed);
    expect(all[states.failed]?.Type).toBe('Fail');
  });

  it('maps every Task to a manifest function, and retries only transient errors', () => {
    for (const [name, task] of Object.entries(taskOfState)) {
      const state = all[name] as AnyState & {
        Resource: string;
        Retry: { ErrorEquals: string[] }[];
        Catch: { ErrorEquals: string[]; Next: string; ResultPath: string | null }[];
      };
      expect(state.Type).toBe('Task');
      expect(state.Resource).toBe(arns[task]);
      expect(functions[task].entry).toMatch(/^lambdas\/handlers\/workflow-/);
      const retried = state.Retry.flatMap((r) => r.ErrorEquals);
      expect(retried).toEqual([...transientErrors]);
      for (const permanent of permanentErrors) expect(retried).not.toContain(permanent);
      if (name === states.markFailed) continue;
      expect(state.Catch[0]).toEqual({
        ErrorEquals: [...permanentErrors],
        ResultPath: '$.error',
        Next: states.markFailed,
      });
      expect(state.Catch[1]?.ErrorEquals).toEqual(['States.ALL']);
    }
  });

  it('keeps datasets out of the state: no Parameters or ResultSelector carry data', () => {
    const text = JSON.stringify(definition);
    expect(text).not.toMatch(/dataset|samples|archs/i);
    expect(text.length).toBeLessThan(10_000);
  });
});
