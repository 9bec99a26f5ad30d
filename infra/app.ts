/** CDK entry point (cdk.json `app`): `npx cdk synth`, `npx cdk deploy --all`. */
import { createEsmApp } from './esm-app.ts';

createEsmApp().app.synth();
