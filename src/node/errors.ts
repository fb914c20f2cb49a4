import { OpenLoraError } from '../common/errors.ts'

export class DataDirLockedError extends OpenLoraError<'DATA_DIR_LOCKED'> {
  constructor(dir: string, pid: number) {
    super(
      'DATA_DIR_LOCKED',
      `data directory ${dir} is in use by another node (pid ${pid}); give each node its own --data-dir`,
      { dir, pid }
    )
  }
}

export class KeyFileError extends OpenLoraError<'KEY_FILE'> {
  constructor(file: string, problem: string) {
    super('KEY_FILE', `key file ${file}: ${problem}`, { file })
  }
}
