#!/usr/bin/env node
// The device daemon: receives measurement jobs over MQTT and reports latencies.
import { register } from 'tsx/esm/api';

register();
await import('../device-client/main.ts');
