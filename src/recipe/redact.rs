//! Credentials of a recipe's YAML tree, whatever the decoder made of it; the string functions
//! (URLs, headers, secret-looking names) are [`crate::redact`]'s, re-exported here.

pub use crate::redact::*;

/// Every credential written in a recipe, found on the YAML tree whatever the decoder made of
/// it (so a recipe with errors is covered too): the value of a secret-looking key
/// (`password`, `api_key`, `POSTGRES_PASSWORD`, ...; not `*_env` / `*_file`, not `${VAR}`, not
/// a number such as `max_tokens: 128`), a credential header's value (and its token after a
/// `Bearer`/`Basic` scheme), and every URL's credentials. Longest first, so that a secret that
/// contains another is masked whole. Every line a diagnostic quotes is masked with these.
pub fn recipe_secrets(root: &super::yaml::Node) -> Vec<String> {
    let mut out = Vec::new();
    collect(root, None, false, &mut out);
    out.retain(|s| !s.is_empty());
    out.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    out.dedup();
    out
}

fn collect(node: &super::yaml::Node, key: Option<&str>, in_headers: bool, out: &mut Vec<String>) {
    use super::yaml::NodeKind;
    match &node.kind {
        NodeKind::Null => {}
        NodeKind::Scalar { value, plain } => {
            if value.contains("://") {
                out.extend(url_credentials(value));
            }
            let Some(k) = key else { return };
            let names_a_source = k.ends_with("_env") || k.ends_with("_file");
            let number = *plain && value.parse::<f64>().is_ok();
            let env_ref = value.starts_with("${") && value.ends_with('}');
            if names_a_source || number || env_ref || value.contains("://") {
                return;
            }
            let header = in_headers && header_is_secret(k);
            if header || looks_secret(k) {
                out.push(value.clone());
                // `Bearer TOKEN` / `Basic B64`: the token alone too (a snippet may quote it
                // differently).
                if let Some((_, tok)) = value.split_once(' ') {
                    out.push(tok.trim().to_string());
                }
            }
            // `NAME=value` in a list form of an environment.
            if let Some((name, v)) = value.split_once('=') {
                if looks_secret(name) && !v.is_empty() && !name.contains(' ') {
                    out.push(v.to_string());
                }
            }
        }
        NodeKind::Seq(items) => {
            for i in items {
                // A list keeps its key: `environment: ["API_TOKEN=x"]`, `api_key: [...]`.
                collect(i, key, in_headers, out);
            }
        }
        NodeKind::Map(entries) => {
            let headers = key.is_some_and(|k| k.eq_ignore_ascii_case("headers"));
            for (k, v) in entries {
                collect(v, k.as_scalar(), headers, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_of_a_recipe_is_found() {
        let root = crate::recipe::yaml::parse(
            "services:\n  - {password: pw1, headers: {Authorization: \"Bearer tk2\", Accept: a}, max_tokens: 128, password_env: PGPW, api_key: \"${K}\", url: \"http://u:pw3@h/?token=tk4\", environment: [\"API_TOKEN=tk5\", \"N=1\"]}\n",
        )
        .unwrap();
        let found = recipe_secrets(&root);
        for s in ["pw1", "Bearer tk2", "tk2", "pw3", "tk4", "tk5"] {
            assert!(found.contains(&s.to_string()), "{s}: {found:?}");
        }
        for s in ["a", "128", "PGPW", "${K}", "1"] {
            assert!(!found.contains(&s.to_string()), "{s}: {found:?}");
        }
        assert_eq!(found[0], "Bearer tk2", "longest first");
    }
}
