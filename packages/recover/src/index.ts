export { DispyJob } from './dispy-job.js';
export { recoverJobs, newestRecoverFile, type RecoverJobsOptions } from './recover-jobs.js';
export { readRecoverFile, type RecoverFileContents, type RecoveredJobEntry } from './file/recover-file-reader.js';
export {
  RecoverFileWriter,
  RECOVER_FLUSH_MS,
  RECOVER_FLUSH_RECORDS,
  type RecoverFileInit,
  type RecoverFileWriterOptions,
  type RecoverNode,
} from './file/recover-file-writer.js';
export {
  RECOVER_FILE_FORMAT,
  RECOVER_FILE_VERSION,
  RECOVER_FILE_PREFIX,
  defaultRecoverFileName,
  type JobRecord,
  type JobState,
  type NodeRecord,
  type RecoverFileHeader,
  type RecoverFileTls,
  type RecoverRecord,
} from './file/recover-file-format.js';
