/**
 * Errors are values with context: where (file, line, column), which option,
 * and which exit status iptables would use (2: parameter problem, 1: other,
 * 3: version/unknown table, 4: resource problem). Command boundaries turn
 * them into messages.
 */
export type ExitStatus = 1 | 2 | 3 | 4;

export interface Where { file?: string; line?: number; col?: number }

export class BpftablesError extends Error {
  constructor(
    message: string,
    readonly status: ExitStatus = 2,
    public where: Where = {},
    /** the option the error is about (set after the fact for errors about a whole command) */
    public option?: string,
    /** true for valid iptables input that bpftables does not support yet */
    readonly unsupported = false,
  ) {
    super(message);
  }


  at(where: Where): this {
    this.where = { ...where, ...this.where, line: this.where.line ?? where.line, file: this.where.file ?? where.file };
    return this;
  }
}

/** A parameter problem iptables reports without its "prog vX.Y.Z: " prefix (e.g. "Bad argument `x'"). */
export class BareParamError extends BpftablesError {}

/** What iptables prints when the kernel refuses a rule it parsed (EINVAL from the table replace). */
export function kernelInvalid(command: string, where: Where = {}): BpftablesError {
  return new BpftablesError(`${command}: Invalid argument. Run \`dmesg' for more information.`, 1, where);
}

export function paramError(message: string, option?: string, col?: number): BpftablesError {
  return new BpftablesError(message, 2, col !== undefined ? { col } : {}, option);
}

export function unsupported(what: string, option: string, col?: number): BpftablesError {
  return new BpftablesError(`${what} is not supported by bpftables yet`, 2, col !== undefined ? { col } : {}, option, true);
}
