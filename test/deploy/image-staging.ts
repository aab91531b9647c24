/**
 * An image's /app laid out on the host the way its Dockerfile builds it,
 * without Docker: the Dockerfile's own `npm ci ...` (production dependencies
 * of one workspace) in a copy of the manifests, then the final stage's COPY
 * instructions from the build context with .dockerignore applied. Running
 * the entry command there proves the image needs nothing that only
 * development installs (a devDependency, a test helper, an ignored file).
 */
import { execFileSync } from 'node:child_process';
import { cp, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from '../helpers/processes.ts';
import { dockerIgnored, DOCKERFILES, npmCiCommand, readFinalStage, type Role } from './deploy-files.ts';

const WORKSPACES = ['shared', 'server', 'client'];

export interface StagedImage {
  /** Where an absolute path of the image is on the host. */
  hostPath(imagePath: string): string;
}

export async function stageImage(role: Role, root: string, nodeDir: string): Promise<StagedImage> {
  const dockerfile = DOCKERFILES[role];
  const stage = readFinalStage(dockerfile);
  // Each stage has its own filesystem, as in a Docker build; COPY --from reads the deps stage's.
  const depsRoot = path.join(root, 'deps');
  const imageRoot = path.join(root, 'image');
  const depsApp = path.join(depsRoot, 'app');
  const run = (command: string[], cwd: string) => {
    const [executable, ...args] = command as [string, ...string[]];
    execFileSync(executable, [...args, '--prefer-offline', '--loglevel=error'], {
      cwd,
      env: { ...process.env, PATH: `${nodeDir}:${process.env.PATH ?? ''}` },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  };

  // The deps stage: the manifests and the Dockerfile's npm ci (nothing else: Node runs the sources, no tsx).
  for (const file of ['package.json', 'package-lock.json', ...WORKSPACES.map((w) => `${w}/package.json`)]) {
    await mkdir(path.dirname(path.join(depsApp, file)), { recursive: true });
    await cp(path.join(REPO_ROOT, file), path.join(depsApp, file));
  }
  run(npmCiCommand(dockerfile), depsApp);

  const hostPath = (imagePath: string): string => path.join(imageRoot, imagePath);
  for (const copy of stage.copies) {
    const destination = path.posix.resolve(copy.workdir, copy.destination);
    for (const source of copy.sources) {
      const from = copy.from === undefined ? path.join(REPO_ROOT, source) : path.join(depsRoot, source);
      // As COPY does: a directory's contents go into the destination; a file goes into it when it ends with '/'.
      const intoDirectory = copy.destination.endsWith('/') && !(await stat(from)).isDirectory();
      const target = intoDirectory ? path.posix.join(destination, path.posix.basename(source)) : destination;
      await mkdir(path.dirname(hostPath(target)), { recursive: true });
      await cp(from, hostPath(target), {
        recursive: true,
        verbatimSymlinks: true,
        filter: (file) => copy.from !== undefined || !dockerIgnored(path.relative(REPO_ROOT, file)),
      });
    }
  }
  return { hostPath };
}
