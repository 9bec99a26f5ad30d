/**
 * An environment in which onnxruntime would collect telemetry, for tests that check that our
 * modules turn it off: the suite's ORT_DISABLE_TELEMETRY removed (test/support/temp-root.ts
 * sets it) and the CI markers removed too, because onnxruntime-node 1.30 suppresses telemetry
 * by itself where one is set (`CI=true`, which .ci/run sets, or the names below, read from its
 * library's strings), and a check of our opt-out would then pass whatever our code did.
 */
const ciMarkers = [
  'CI',
  'APPVEYOR',
  'BUILDKITE',
  'CIRCLECI',
  'CODEBUILD_BUILD_ID',
  'GITHUB_ACTIONS',
  'GITLAB_CI',
  'JENKINS_URL',
  'SYSTEM_TEAMFOUNDATIONCOLLECTIONURI',
  'TEAMCITY_VERSION',
  'TF_BUILD',
  'TRAVIS',
];

export function telemetryOnEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const name of [...ciMarkers, 'ORT_DISABLE_TELEMETRY']) delete copy[name];
  return copy;
}

/** The same as overrides for a spawn that merges onto process.env (undefined: unset). */
export const telemetryOnOverrides: Record<string, undefined> = Object.fromEntries(
  [...ciMarkers, 'ORT_DISABLE_TELEMETRY'].map((name) => [name, undefined]),
);
