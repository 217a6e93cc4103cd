/** Bounds of agent messages that the store could not hold. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentMessage } from '../src/agent-link.js';

test('a result whose exit code does not fit 32 bits is refused at the edge', () => {
  const finished = (exitCode: number) => ({
    v: 1,
    type: 'task.finished',
    key: '12:0:34',
    outcome: 'exited',
    exitCode,
    startTime: 1,
    endTime: 2,
    outputBytes: 0,
    droppedBytes: 0,
  });
  assert.equal(AgentMessage.safeParse(finished(0x7fffffff)).success, true);
  assert.equal(AgentMessage.safeParse(finished(-0x80000000)).success, true);
  // PostgreSQL refuses it in the exit_code column; the refused write would be retried for good.
  assert.equal(AgentMessage.safeParse(finished(3_000_000_000)).success, false);
  assert.equal(AgentMessage.safeParse(finished(-0x80000001)).success, false);
});

test("a task.report carries a download's file reports, checked as task.file's are", () => {
  const file = {
    label: '0:127.0.0.2',
    sourcePath: '/a',
    targetPath: '/t/a',
    status: 'finished',
    size: 1,
    bytes: 1,
    speed: 1,
    message: '',
  };
  const report = (files: unknown[]) => ({
    v: 1,
    type: 'task.report',
    key: '12:0:34',
    startTime: 1,
    files,
    result: { outcome: 'exited', exitCode: 0, startTime: 1, endTime: 2, outputBytes: 0, droppedBytes: 0 },
  });
  const parsed = AgentMessage.parse(report([file]));
  assert.deepEqual(parsed.type === 'task.report' && parsed.files, [file]);
  assert.equal(AgentMessage.safeParse(report([{ ...file, status: 'done' }])).success, false);
  assert.equal(AgentMessage.safeParse(report([{ ...file, bytes: -1 }])).success, false);
});
