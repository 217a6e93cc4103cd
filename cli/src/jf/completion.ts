/** Shell completion scripts, generated from the command tree so they never fall behind it. */
import type { Command } from 'commander';

function words(cmd: Command): { path: string; subs: string[]; flags: string[] }[] {
  const out: { path: string; subs: string[]; flags: string[] }[] = [];
  const walk = (c: Command, path: string) => {
    out.push({
      path,
      subs: c.commands.map((s) => s.name()),
      flags: c.options.flatMap((o) => [o.long, o.short].filter((f): f is string => Boolean(f))),
    });
    for (const s of c.commands) walk(s, path ? `${path} ${s.name()}` : s.name());
  };
  walk(cmd, '');
  return out;
}

export function completionScript(root: Command, shell: 'bash' | 'zsh' | 'fish'): string {
  const name = root.name();
  const tree = words(root);
  if (shell === 'fish') {
    const lines = [`# fish completion for ${name}`];
    for (const t of tree) {
      const cond = t.path
        ? `__fish_seen_subcommand_from ${t.path.split(' ').pop()}`
        : '__fish_use_subcommand';
      for (const s of t.subs) lines.push(`complete -c ${name} -f -n '${cond}' -a '${s}'`);
      for (const f of t.flags.filter((x) => x.startsWith('--')))
        lines.push(`complete -c ${name} -n '${cond}' -l '${f.slice(2)}'`);
    }
    return lines.join('\n') + '\n';
  }
  const cases = tree
    .map((t) => `    "${t.path}") words="${[...t.subs, ...t.flags].join(' ')}" ;;`)
    .join('\n');
  const fn = `_${name.replace(/\W/g, '_')}_complete`;
  const body = `${fn}() {
  local cur path="" w
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for w in "\${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
    case "$w" in -*) ;; *) case " $(${fn}_words "$path") " in *" $w "*) path="\${path:+$path }$w" ;; esac ;; esac
  done
  COMPREPLY=( $(compgen -W "$(${fn}_words "$path")" -- "$cur") )
}
${fn}_words() {
  local words=""
  case "$1" in
${cases}
  esac
  echo "$words"
}
`;
  if (shell === 'zsh')
    return `#compdef ${name}\nautoload -U +X bashcompinit && bashcompinit\n${body}complete -F ${fn} ${name}\n`;
  return `${body}complete -F ${fn} ${name}\n`;
}
