//! The data services: vector databases, PostgreSQL, S3, file storage, and any HTTP service.

use super::workload::Workload;
use super::{
    no_launch, Check, Decoder, Health, Kind, Launch, LaunchCtx, Server, ServiceKind, Word,
    BIND_HOST,
};

pub const VECTORDB_KEYS: &[&str] = &[
    "backend",
    "host",
    "collection_name",
    "dimension",
    "operation_mix",
    "batch_size",
    "search_k",
    "vectors",
    "dataset_size",
    "recall_queries",
    "index",
];
pub const DATABASE_KEYS: &[&str] = &[
    "backend",
    "host",
    "database",
    "user",
    "password",
    "password_env",
    "password_file",
    "operation_mix",
    "batch_size",
    "table_name",
    "seed_rows",
    "keep_table",
];
pub const S3_KEYS: &[&str] = &[
    "endpoint_url",
    "access_key",
    "access_key_env",
    "access_key_file",
    "secret_key",
    "secret_key_env",
    "secret_key_file",
    "bucket_name",
    "region",
    "operation_mix",
    "object_sizes",
    "addressing",
    "cleanup",
];
pub const FILE_KEYS: &[&str] = &[
    "base_path",
    "operation_mix",
    "file_sizes",
    "use_direct_io",
    "sync_mode",
    "working_set_files",
    "io_size",
    "io_engine",
];
pub const HTTP_KEYS: &[&str] = &["url", "method", "headers", "body", "expect_status"];

// ---------- vector databases (the backends are in `vector.rs`) ----------

pub struct Vectordb;

impl Kind for Vectordb {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Vectordb
    }
    fn names(&self) -> &'static [&'static str] {
        &["vectordb"]
    }
    fn recipe_keys(&self) -> &'static [&'static str] {
        VECTORDB_KEYS
    }
    fn decoder(&self) -> Decoder {
        Decoder::Vector
    }
    fn server(&self) -> Option<&'static Server> {
        None
    }
    fn checks(&self) -> &'static [Check] {
        &[Check::FaissIndex]
    }
    fn mem_floor_mib(&self) -> Option<u64> {
        Some(super::VECTORDB_MEM_FLOOR_MIB)
    }
}

// ---------- PostgreSQL ----------

pub struct Database;

static POSTGRES_SERVER: Server = Server {
    default_port: Some(5432),
    health: Health::Postgres,
    launch: launch_postgres,
};

impl Kind for Database {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Database
    }
    fn names(&self) -> &'static [&'static str] {
        &["database"]
    }
    fn recipe_keys(&self) -> &'static [&'static str] {
        DATABASE_KEYS
    }
    fn decoder(&self) -> Decoder {
        Decoder::Database
    }
    fn server(&self) -> Option<&'static Server> {
        Some(&POSTGRES_SERVER)
    }
    fn url_schemes(&self) -> &'static [&'static str] {
        &["postgresql", "postgres"]
    }
    fn checks(&self) -> &'static [Check] {
        &[Check::ReconcileDatabase]
    }
    /// A worker is one wire-protocol session of its own (runner::clients::postgres::wire).
    fn client_threads(&self) -> bool {
        true
    }
}

fn launch_postgres(cx: &LaunchCtx) -> Launch {
    let mut l = Launch::default();
    let Workload::Database(d) = cx.workload else {
        return l;
    };
    l.env.push(("POSTGRES_USER".into(), d.user.clone()));
    l.env.push(("POSTGRES_DB".into(), d.database.clone()));
    l.env
        .push(("PGDATA".into(), "/var/lib/postgresql/data/pgdata".into()));
    if d.password.is_some() {
        l.secret_env
            .push(("POSTGRES_PASSWORD".into(), "FB_DB_PASSWORD".into()));
    }
    l.args.extend(
        ["postgres", "-c", &format!("listen_addresses={BIND_HOST}")]
            .into_iter()
            .map(Word::lit),
    );
    if cx.port.is_some() {
        l.args.extend([Word::lit("-p"), Word::lit(cx.port_str())]);
    }
    l.scratch
        .push(("pgdata".into(), "/var/lib/postgresql/data".into()));
    l.scratch
        .push(("pgrun".into(), "/var/run/postgresql".into()));
    l
}

// ---------- S3 ----------

pub struct S3;

static MINIO_SERVER: Server = Server {
    default_port: Some(9000),
    health: Health::HttpAny,
    launch: launch_minio,
};

impl Kind for S3 {
    fn kind(&self) -> ServiceKind {
        ServiceKind::S3
    }
    fn names(&self) -> &'static [&'static str] {
        &["s3"]
    }
    fn recipe_keys(&self) -> &'static [&'static str] {
        S3_KEYS
    }
    fn decoder(&self) -> Decoder {
        Decoder::S3
    }
    fn server(&self) -> Option<&'static Server> {
        Some(&MINIO_SERVER)
    }
}

fn launch_minio(cx: &LaunchCtx) -> Launch {
    let mut l = Launch::default();
    l.secret_env
        .push(("MINIO_ROOT_USER".into(), "FB_S3_ACCESS_KEY".into()));
    l.secret_env
        .push(("MINIO_ROOT_PASSWORD".into(), "FB_S3_SECRET_KEY".into()));
    l.args.extend([Word::lit("server"), Word::lit("/data")]);
    if let Some(port) = cx.port {
        l.args.extend([
            Word::lit("--address"),
            Word::lit(format!("{BIND_HOST}:{port}")),
        ]);
        if port < u16::MAX {
            l.args.extend([
                Word::lit("--console-address"),
                Word::lit(format!("{BIND_HOST}:{}", port + 1)),
            ]);
        }
    }
    l.scratch.push(("data".into(), "/data".into()));
    l
}

// ---------- file storage ----------

pub struct FileStorage;

static FILE_SERVER: Server = Server {
    default_port: None,
    health: Health::Path,
    launch: no_launch,
};

impl Kind for FileStorage {
    fn kind(&self) -> ServiceKind {
        ServiceKind::FileStorage
    }
    fn names(&self) -> &'static [&'static str] {
        &["file_storage"]
    }
    fn recipe_keys(&self) -> &'static [&'static str] {
        FILE_KEYS
    }
    fn decoder(&self) -> Decoder {
        Decoder::FileStorage
    }
    fn server(&self) -> Option<&'static Server> {
        Some(&FILE_SERVER)
    }
}

// ---------- any HTTP service ----------

pub struct Http;

static HTTP_SERVER: Server = Server {
    default_port: None,
    health: Health::HttpAny,
    launch: no_launch,
};

impl Kind for Http {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Http
    }
    fn names(&self) -> &'static [&'static str] {
        &["http"]
    }
    fn recipe_keys(&self) -> &'static [&'static str] {
        HTTP_KEYS
    }
    fn decoder(&self) -> Decoder {
        Decoder::Http
    }
    fn server(&self) -> Option<&'static Server> {
        Some(&HTTP_SERVER)
    }
    /// Every worker opens its own connection (lean, hyper or TLS) where it runs.
    fn client_threads(&self) -> bool {
        true
    }
}
