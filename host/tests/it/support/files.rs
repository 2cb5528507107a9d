//! Reading the repository's deployment files the way their tools do, for
//! the tests that check them without those tools: shell command lines (a
//! Dockerfile's `RUN`, `.ci/run`), `.dockerignore` patterns, and compose's
//! `${NAME:-default}` interpolation. Each does only as much as the files
//! here use, and refuses what it does not understand rather than guess.

use std::collections::BTreeMap;

/// The simple commands of shell text, each as its words with the quotes
/// removed: split at `&&`, `||`, `;`, `|` and line ends outside quotes,
/// after joining `\`-continued lines. A `#` starting a word comments out the
/// rest of its line. Nothing is expanded: `$VAR` stays as written.
pub fn shell_commands(text: &str) -> Vec<Vec<String>> {
    let text = text.replace("\\\r\n", " ").replace("\\\n", " ");
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars().peekable();
    let end_word = |word: &mut Option<String>, words: &mut Vec<String>| {
        if let Some(w) = word.take() {
            words.push(w);
        }
    };
    let end_command = |words: &mut Vec<String>, commands: &mut Vec<Vec<String>>| {
        if !words.is_empty() {
            commands.push(std::mem::take(words));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let w = word.get_or_insert_with(String::new);
                while let Some(q) = chars.next() {
                    if q == c {
                        break;
                    }
                    if q == '\\' && c == '"' && chars.peek().is_some_and(|n| "\"\\$`".contains(*n))
                    {
                        w.extend(chars.next());
                    } else {
                        w.push(q);
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            '#' if word.is_none() => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                end_command(&mut words, &mut commands);
            }
            '&' | '|' | ';' | '\n' => {
                end_word(&mut word, &mut words);
                if c != '\n' && chars.peek() == Some(&c) {
                    chars.next();
                }
                end_command(&mut words, &mut commands);
            }
            c if c.is_whitespace() => end_word(&mut word, &mut words),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    end_word(&mut word, &mut words);
    end_command(&mut words, &mut commands);
    commands
}

/// `.dockerignore`: which paths of the build context Docker leaves out.
pub struct DockerIgnore {
    /// Each pattern's path components, and whether it is an exception (`!`).
    patterns: Vec<(Vec<String>, bool)>,
}

impl DockerIgnore {
    pub fn parse(text: &str) -> Self {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let (pattern, exception) = match line.strip_prefix('!') {
                    Some(rest) => (rest.trim(), true),
                    None => (line, false),
                };
                assert!(
                    !pattern.contains(['[', '\\']),
                    ".dockerignore pattern `{line}`: character classes and escapes are not read here"
                );
                let parts = pattern
                    .trim_matches('/')
                    .split('/')
                    .filter(|p| !p.is_empty() && *p != ".")
                    .map(str::to_owned)
                    .collect();
                (parts, exception)
            })
            .collect();
        Self { patterns }
    }

    /// Whether `path` (relative to the context, `/`-separated) is left out:
    /// the last pattern matching it or a folder above it decides, as in
    /// Docker's pattern matcher.
    pub fn excludes(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut excluded = false;
        for (pattern, exception) in &self.patterns {
            let matches = (1..=parts.len()).any(|n| path_matches(pattern, &parts[..n]));
            if matches {
                excluded = !exception;
            }
        }
        excluded
    }
}

/// Whether glob components match path components; `**` matches any number.
fn path_matches(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| path_matches(rest, &path[skip..]))
        }
        Some((first, rest)) => path
            .split_first()
            .is_some_and(|(p, path)| name_matches(first, p) && path_matches(rest, path)),
    }
}

/// One component: `*` is any run of characters, `?` any one.
fn name_matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    fn at(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|skip| at(rest, &n[skip..])),
            Some(('?', rest)) => !n.is_empty() && at(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && at(rest, &n[1..]),
        }
    }
    at(&p, &n)
}

/// A compose value with its `$NAME`, `${NAME}`, `${NAME:-default}`,
/// `${NAME-default}`, `${NAME:?message}` and `$$` replaced as compose does
/// from `env`; `Err` with the message where compose would refuse the file.
pub fn interpolate(text: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(braced) = rest.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
            let inner = &braced[..end];
            rest = &braced[end + 1..];
            let name_end = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, modifier) = inner.split_at(name_end);
            let value = env.get(name).map(String::as_str);
            let set = value.is_some_and(|v| !v.is_empty());
            out.push_str(&match modifier {
                "" => value.unwrap_or_default().to_owned(),
                m if m.starts_with(":-") => if set {
                    value.unwrap_or_default()
                } else {
                    &m[2..]
                }
                .to_owned(),
                m if m.starts_with('-') => value.unwrap_or(&m[1..]).to_owned(),
                m if m.starts_with(":?") && set => value.unwrap_or_default().to_owned(),
                m if m.starts_with('?') && value.is_some() => value.unwrap_or_default().to_owned(),
                m if m.starts_with(":?") || m.starts_with('?') => {
                    return Err(format!("{name}: {}", m.trim_start_matches([':', '?'])));
                }
                m => return Err(format!("`${{{name}{m}}}` in `{text}` is not read here")),
            });
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push_str(env.get(&rest[..end]).map_or("", String::as_str));
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

// Not `use super::*`: the benchmarks include this folder too, where test
// functions are left out and the import would be unused.
#[cfg(test)]
mod tests {
    #[test]
    fn dockerignore_patterns_match_as_dockers_do() {
        let ignore =
            super::DockerIgnore::parse("# c\n**/target\n/docs/*.md\n!docs/keep.md\nfoo?\n");
        assert!(ignore.excludes("target") && ignore.excludes("a/b/target/c"));
        assert!(ignore.excludes("docs/a.md") && !ignore.excludes("docs/keep.md"));
        assert!(!ignore.excludes("docs/sub/a.md") && !ignore.excludes("targets"));
        assert!(ignore.excludes("foo1/x") && !ignore.excludes("foo"));
    }

    #[test]
    fn shell_commands_split_as_a_shell_does() {
        let text = "apt-get update \\\n  && apt-get install -y 'a b' \"c\\\"d\" # note\nx=1 cargo build; echo '#' | tee";
        let commands = super::shell_commands(text);
        let words = |c: &[&str]| c.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert_eq!(
            commands,
            [
                words(&["apt-get", "update"]),
                words(&["apt-get", "install", "-y", "a b", "c\"d"]),
                words(&["x=1", "cargo", "build"]),
                words(&["echo", "#"]),
                words(&["tee"]),
            ]
        );
    }

    #[test]
    fn compose_interpolation_fills_defaults_as_compose_does() {
        let env = std::collections::BTreeMap::from([
            ("SET".to_owned(), "x".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ]);
        let i = |t: &str| super::interpolate(t, &env);
        assert_eq!(i("a${SET}b$SET$$").as_deref(), Ok("axbx$"));
        assert_eq!(
            i("${EMPTY:-d}|${EMPTY-d}|${UNSET-d}").as_deref(),
            Ok("d||d")
        );
        assert!(i("${UNSET:?set UNSET}").is_err() && i("${EMPTY:?e}").is_err());
        assert_eq!(i("${EMPTY?e}").as_deref(), Ok(""));
    }
}
