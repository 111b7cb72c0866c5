/** Small helpers for writing POSIX shell safely. */

/** `s` as one single-quoted shell word. */
export function sq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A quoted heredoc writing `content` to `path` (a shell expression), with `mode`. */
export function writeFileCommand(path: string, content: string, mode = '0644'): string {
  const marker = 'PULLTHROUGH_EOF';
  if (content.includes(marker)) throw new TypeError('content holds the heredoc marker');
  const body = content.endsWith('\n') ? content : `${content}\n`;
  return `mkdir -p "$(dirname ${path})"\ncat > ${path} <<'${marker}'\n${body}${marker}\nchmod ${mode} ${path}\n`;
}
