/**
 * A problem with an input file or folder that the user can fix: the message names the file,
 * says what is wrong with it and what to do. The CLI prints it without a stack trace.
 */
export class DataError extends Error {
  override readonly name = 'DataError';
  /** The file or folder at fault, when there is one. */
  readonly file?: string;

  constructor(message: string, file?: string) {
    super(message);
    this.file = file;
  }
}
