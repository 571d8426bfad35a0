// DispyJob lives in @dispy/recover, which builds DispyJobs of recovered jobs and sits below the client.
export { DispyJob } from '@dispy/recover';
