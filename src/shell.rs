//! The one POSIX shell quoter. Every value that reaches a shell line — rendered batch scripts
//! (the `shell_quote` template filter), the monitoring stack's script, `sbatch --wrap` commands
//! and the commands the tool prints for a user to copy — goes through [`quote`].

/// Quote `s` as one POSIX shell word, safe in any position (command name, argument,
/// assignment value). A non-empty word made only of `A-Z a-z 0-9 _ - . / : , @ +` stays as it
/// is; anything else is put in single quotes, with `'` written as `'\''`.
///
/// The plain set leaves out every character a shell treats specially somewhere: `=` (a first
/// word `A=b` is an assignment), `%` (a first word `%1` is a job), `~`, `$`, quotes, globs,
/// braces, whitespace and the control operators.
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'_' | b'-' | b'.' | b'/' | b':' | b',' | b'@' | b'+')
        });
    if plain {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(quote("gpu:1"), "gpu:1");
        assert_eq!(quote("/a/b-c_d.e"), "/a/b-c_d.e");
        assert_eq!(quote("user@host,x+y"), "user@host,x+y");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("A=b"), "'A=b'");
        assert_eq!(quote("%1"), "'%1'");
        assert_eq!(quote("~root"), "'~root'");
        assert_eq!(quote("$(x)"), "'$(x)'");
    }

    /// Every word comes back unchanged through bash, as an argument and as the value of an
    /// assignment, and a quoted first word is never run as a command or an assignment.
    #[test]
    fn round_trips_through_bash() {
        let tricky = [
            "plain",
            "it's",
            "''",
            "$(touch /nonexistent/x)",
            "`id`",
            "a;b|c&d",
            "\"double\" and 'single'",
            "line1\nline2",
            "back\\slash",
            "*?[glob]{a,b}",
            "",
            "-n",
            "tab\there",
            "ünïcödé",
            "A=b",
            "%1",
            "~",
            "!x",
            "#comment",
            "a\u{1}b",
        ];
        for t in tricky {
            let q = quote(t);
            let script = format!("printf %s {q}; v={q}; printf '|%s' \"$v\"");
            let out = std::process::Command::new("bash")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                format!("{t}|{t}"),
                "{t:?} quoted as {q}"
            );
        }
        // As the first word, `A=b` stays a command name (not found), not an assignment.
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("{} 2>/dev/null; echo $?", quote("A=b")))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "127\n");
    }
}
