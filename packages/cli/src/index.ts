/** @passerelle/cli: the `passerelle` command as a function (`run`), and the pieces the demo reuses. */
export { run, COMMANDS, CLI_VERSION } from './cli.js';
export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, type Io, type OutputStream } from './io.js';
export { inspectText, renderInspection, UNVERIFIED_BANNER, type Inspection } from './commands/inspect.js';
export { bundleExporter, bundleVerifier, formatAuditReport, verifyBundleFile, type AuditReportLike } from './commands/audit.js';
