// Preloaded with `node --import` (through NODE_OPTIONS, which refuses
// --cpu-prof on Node 20): profiles the whole process with the inspector and
// writes CPU.<pid>.cpuprofile into CAIRN_CPU_PROFILE_DIR when it exits.
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';

const dir = process.env.CAIRN_CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  process.on('exit', () => {
    // Posts on an in-thread session complete synchronously, so this runs before the process ends.
    session.post('Profiler.stop', (error, result) => {
      if (error) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, `CPU.${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
