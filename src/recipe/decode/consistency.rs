//! Checks across keys of one service: what the started container is given must be what the
//! client uses (one source of truth), and what a container kind needs to start at all.

use super::fields::*;
use crate::recipe::plan::*;
use crate::recipe::yaml::Pos;

/// The parts of `postgresql://[user[:password]@]host[:port][/database]` a client uses.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct PgUrlParts {
    pub user: Option<String>,
    pub password: Option<String>,
    pub database: Option<String>,
}

pub(crate) fn pg_url_parts(url: &str) -> PgUrlParts {
    let Ok(u) = url::Url::parse(url) else {
        return PgUrlParts::default();
    };
    // `%XX` escapes decoded; invalid ones are kept as written.
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    PgUrlParts {
        user: Some(decode(u.username())).filter(|s| !s.is_empty()),
        password: u.password().map(decode),
        database: u
            .path()
            .strip_prefix('/')
            .map(decode)
            .filter(|s| !s.is_empty()),
    }
}

/// One value of a setting and where it was written.
struct Source {
    path: String,
    pos: Pos,
    value: String,
}

/// The value all sources agree on (first given wins); an error for every source that differs.
fn agree(cx: &mut Ctx, what: &str, sources: &[Source]) -> Option<String> {
    let first = sources.first()?;
    for s in &sources[1..] {
        if s.value != first.value {
            cx.error_help(
                s.pos,
                &s.path,
                format!(
                    "the {what} here (`{}`) differs from `{}` (`{}`): the container would be \
                     started with one and the client connect with the other",
                    s.value.escape_debug(),
                    first.path,
                    first.value.escape_debug()
                ),
                format!("write the {what} once (`{}`)", first.path),
            );
        }
    }
    Some(first.value.clone())
}

/// The environment names a `database` container is given by factorybench (from the workload).
pub(crate) const POSTGRES_ENV: [&str; 3] = ["POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD"];

/// A `database` service: user, database and password from `user`/`database`/`password`,
/// `service_url` and `environment.POSTGRES_*` must agree; the agreed values become the
/// workload's (the client's) and the container's, which then takes them from the workload only.
pub(super) fn reconcile_database(
    cx: &mut Ctx,
    f: &Fields,
    runtime: Runtime,
    service_url: Option<&str>,
    container: &mut ContainerSpec,
    workload: &mut Workload,
) {
    let Workload::Database(d) = workload else {
        return;
    };
    let url = service_url.map(pg_url_parts).unwrap_or_default();
    let url_pos = f.get("service_url").map(|n| n.pos).unwrap_or(f.pos());
    let env_pos = |name: &str| {
        f.get("environment")
            .and_then(|n| n.as_map())
            .and_then(|m| {
                m.iter()
                    .find(|(k, _)| k.as_scalar() == Some(name))
                    .map(|(_, v)| v.pos)
            })
            .unwrap_or(f.pos())
    };
    let env_plain = |name: &str| {
        container
            .env
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| match &e.value {
                EnvValue::Plain(v) => Some(v.clone()),
                EnvValue::Secret(Secret::Plain(v)) => Some(v.clone()),
                _ => None,
            })
    };
    let envp = f.p("environment");
    let env_path = |name: &str| format!("{envp}.{name}");

    for (key, url_value, env_name) in [
        ("user", url.user.clone(), "POSTGRES_USER"),
        ("database", url.database.clone(), "POSTGRES_DB"),
    ] {
        let mut sources = Vec::new();
        if let Some(n) = f.get(key) {
            sources.push(Source {
                path: f.p(key),
                pos: n.pos,
                value: if key == "user" {
                    d.user.clone()
                } else {
                    d.database.clone()
                },
            });
        }
        if let Some(v) = url_value {
            sources.push(Source {
                path: f.p("service_url"),
                pos: url_pos,
                value: v,
            });
        }
        if let Some(v) = env_plain(env_name) {
            sources.push(Source {
                path: env_path(env_name),
                pos: env_pos(env_name),
                value: v,
            });
        }
        if let Some(v) = agree(cx, key, &sources) {
            if key == "user" {
                d.user = v;
            } else {
                d.database = v;
            }
        }
    }

    // The password: `password` (or its _env/_file form), service_url, POSTGRES_PASSWORD.
    let explicit = ["password", "password_env", "password_file"]
        .into_iter()
        .find(|k| f.get(k).is_some());
    let env_pw = container
        .env
        .iter()
        .find(|e| e.name == "POSTGRES_PASSWORD")
        .map(|e| match &e.value {
            EnvValue::Plain(v) => Secret::Plain(v.clone()),
            EnvValue::Secret(s) => s.clone(),
        });
    let mut given: Vec<(String, Pos, Secret)> = Vec::new();
    if let (Some(k), Some(p)) = (explicit, d.password.clone()) {
        given.push((f.p(k), f.get(k).unwrap().pos, p));
    }
    if let Some(p) = url.password.clone() {
        given.push((f.p("service_url"), url_pos, Secret::Plain(p)));
    }
    if let Some(p) = env_pw {
        given.push((
            env_path("POSTGRES_PASSWORD"),
            env_pos("POSTGRES_PASSWORD"),
            p,
        ));
    }
    if let Some((first_path, _, first)) = given.first().cloned() {
        for (path, pos, s) in &given[1..] {
            if *s != first {
                cx.error_help(
                    *pos,
                    path,
                    format!(
                        "this password differs from the one in `{first_path}`: the container \
                         would be started with one and the client log in with the other"
                    ),
                    format!("give the password once (`{first_path}`)"),
                );
            }
        }
        d.password = Some(first);
    }
    // The container gets user, database and password from the workload (launch_postgres):
    // never a second copy from `environment`.
    if matches!(runtime, Runtime::Apptainer | Runtime::Podman) {
        container
            .env
            .retain(|e| !POSTGRES_ENV.contains(&e.name.as_str()));
    }
}

/// Triton started in a container: a model repository should be bound, and an image model must
/// not be driven with text.
pub(super) fn check_triton(
    cx: &mut Ctx,
    f: &Fields,
    runtime: Runtime,
    container: &ContainerSpec,
    workload: &Workload,
) {
    if let Workload::Llm(l) = workload {
        if is_image_model(&l.model) {
            cx.error_help(
                f.get("api").map(|n| n.pos).unwrap_or(f.pos()),
                &f.p("api"),
                format!(
                    "`{}` looks like an image model, but this `api` sends text",
                    l.model.escape_debug()
                ),
                "drop `api` (or write `api: tensor`): image models run through KServe v2 \
                 tensor inference"
                    .into(),
            );
        }
    }
    if !matches!(runtime, Runtime::Apptainer | Runtime::Podman) {
        return;
    }
    let repo = triton_model_repository(&container.extra_args);
    let bound = container.binds.iter().any(|b| bind_covers(&b.dst, &repo));
    if !bound {
        // A warning for `validate` and `compile` (recipes users already have keep validating);
        // `submit` refuses it and `doctor` fails it: the job could not start.
        cx.warn_stops_submit(
            f.get("binds").map(|n| n.pos).unwrap_or(f.pos()),
            &f.p("binds"),
            format!(
                "Triton's model repository `{repo}` is not bound into the container: the server \
                 cannot start without models (`submit` refuses this service)"
            ),
            Some(format!(
                "bind your model repository: `binds: [\"/path/to/model_repository:{repo}:ro\"]`"
            )),
        );
    }
}

/// A bind at `dst` makes `path` visible in the container.
pub fn bind_covers(dst: &str, path: &str) -> bool {
    let d = dst.trim_end_matches('/');
    path == d || path.starts_with(&format!("{d}/"))
}

/// The model repository Triton is started with: `--model-repository=DIR` in `container_args`,
/// else `/models`.
pub fn triton_model_repository(extra_args: &[String]) -> String {
    let mut it = extra_args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix("--model-repository=") {
            return v.trim_end_matches('/').to_string();
        }
        if a == "--model-repository" {
            if let Some(v) = it.next() {
                return v.trim_end_matches('/').to_string();
            }
        }
    }
    "/models".into()
}

/// Well-known image classification / detection model names (the seed recipes' `resnet50`).
pub(super) fn is_image_model(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    const IMAGE: &[&str] = &[
        "resnet",
        "densenet",
        "inception",
        "efficientnet",
        "mobilenet",
        "vgg",
        "yolo",
        "alexnet",
        "squeezenet",
        "retinanet",
        "maskrcnn",
        "fasterrcnn",
    ];
    IMAGE.iter().any(|p| m.starts_with(p))
}

/// A Faiss HNSW index cannot remove vectors: a mix that deletes or updates cannot run. An error
/// at this service only ([`Ctx::cannot_run`]): the recipe's other services stay selectable.
pub(super) fn check_faiss(cx: &mut Ctx, f: &Fields, workload: &Workload) {
    use crate::kinds::vector::VectorBackend;
    let Workload::Vectordb(v) = workload else {
        return;
    };
    if v.backend != VectorBackend::Faiss || !matches!(v.index, FaissIndex::Hnsw { .. }) {
        return;
    }
    let removes = v
        .mix
        .weights
        .iter()
        .any(|(op, w)| *w > 0.0 && matches!(op, VectorOp::Delete | VectorOp::Update));
    if removes {
        cx.cannot_run(
            f.get("operation_mix").map(|n| n.pos).unwrap_or(f.pos()),
            &f.p("operation_mix"),
            "Faiss HNSW indexes cannot remove vectors, so this service's delete/update \
             operations cannot run",
            "use an operation_mix of insert/search only, or `index: flat`; the other services \
             run with --service NAME"
                .into(),
        );
    }
}

/// An Ollama server the job starts in a container, with no model store of the recipe's (the
/// default store is the campaign's fresh cache) and no pull: it has no model, and the job fails
/// at setup after the queue wait. A warning.
pub(super) fn check_ollama_store(
    cx: &mut Ctx,
    f: &Fields,
    runtime: Runtime,
    container: &ContainerSpec,
    workload: &Workload,
) {
    let Workload::Llm(l) = workload else {
        return;
    };
    let store_bound = container
        .binds
        .iter()
        .any(|b| bind_covers(&b.dst, "/root/.ollama") || bind_covers("/root/.ollama", &b.dst))
        || container.env.iter().any(|e| e.name == "OLLAMA_MODELS");
    if matches!(runtime, Runtime::Apptainer | Runtime::Podman) && !l.pull_model && !store_bound {
        cx.warn(
            f.get("pull_model").or(f.get("model")).map_or(f.pos(), |n| n.pos),
            &f.p("pull_model"),
            format!(
                "model `{}` must be pulled: the container starts with an empty model store (the campaign's cache/ollama) and `pull_model` is false, so the job would fail at setup",
                l.model
            ),
            Some("set `pull_model: true`, or bind a store that holds it to /root/.ollama (`factorybench doctor` checks it)".into()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parts() {
        assert_eq!(
            pg_url_parts("postgresql://ana:p%40ss@db:5432/bench?sslmode=disable"),
            PgUrlParts {
                user: Some("ana".into()),
                password: Some("p@ss".into()),
                database: Some("bench".into())
            }
        );
        assert_eq!(
            pg_url_parts("postgresql://localhost:5432"),
            PgUrlParts::default()
        );
    }

    #[test]
    fn model_repository_from_args() {
        assert_eq!(triton_model_repository(&[]), "/models");
        assert_eq!(
            triton_model_repository(&["--model-repository=/repo/".into()]),
            "/repo"
        );
        assert_eq!(
            triton_model_repository(&["--model-repository".into(), "/r".into()]),
            "/r"
        );
    }
}
