//! Faiss's C API (`libfaiss_c`), loaded at run time with `dlopen` — the way `nvml-wrapper`
//! loads NVML — so the binary `cargo install --path .` builds runs Faiss wherever the site has
//! it, and builds with no Faiss at all.
//!
//! Where the library is looked for, in order:
//! 1. `FB_FAISS_LIB` (a path or a file name), when set: only there.
//! 2. `libfaiss_c_avx512.so` / `libfaiss_c_avx2.so` when the CPU has the instructions (the names
//!    conda-forge's `libfaiss` ships), then `libfaiss_c.so` — through the dynamic loader
//!    (`LD_LIBRARY_PATH`, which `module load faiss` sets, and the ldconfig cache), then under
//!    `$CONDA_PREFIX/lib`.
//!
//! The GPU part of the C API (`faiss_StandardGpuResources_new`, `faiss_index_cpu_to_gpu`,
//! `faiss_get_num_gpus`) is optional: a CPU-only build lacks it.

use std::ffi::{c_char, c_int, CStr};
use std::sync::OnceLock;

/// The environment variable that names the library to load.
pub const LIB_ENV: &str = "FB_FAISS_LIB";

/// How to get the library on a node, for messages (`run`, `doctor`).
pub const HOW_TO_GET: &str = "load Faiss's C library: `module load faiss` (a Faiss built with \
     -DFAISS_ENABLE_C_API=ON), conda `conda install -c conda-forge libfaiss` (or `faiss-gpu`) with \
     $CONDA_PREFIX/lib on LD_LIBRARY_PATH, or on Debian/Ubuntu `apt-get install libfaiss-dev` and \
     scripts/build-faiss-c.sh; or set FB_FAISS_LIB=/path/to/libfaiss_c.so";

#[repr(C)]
pub struct FaissIndexT {
    _p: [u8; 0],
}
#[repr(C)]
pub struct FaissIdSelectorT {
    _p: [u8; 0],
}
#[repr(C)]
pub struct FaissGpuResourcesT {
    _p: [u8; 0],
}
pub type IdxT = i64;
/// `METRIC_L2` in `faiss/c_api/Index_c.h`.
pub const METRIC_L2: c_int = 1;

#[derive(Debug, Clone, thiserror::Error)]
pub enum FaissLibError {
    #[error("Faiss's C library was not found (tried {tried}: {detail}); {HOW_TO_GET}")]
    NotFound { tried: String, detail: String },
    #[error("{path} is not Faiss's C library: it has no `{symbol}` ({detail}); {HOW_TO_GET}")]
    MissingSymbol {
        path: String,
        symbol: &'static str,
        detail: String,
    },
}

/// The GPU half of the C API (absent from CPU-only builds).
pub struct GpuApi {
    pub resources_new: unsafe extern "C" fn(*mut *mut FaissGpuResourcesT) -> c_int,
    pub resources_free: unsafe extern "C" fn(*mut FaissGpuResourcesT),
    pub index_cpu_to_gpu: unsafe extern "C" fn(
        *mut FaissGpuResourcesT,
        c_int,
        *const FaissIndexT,
        *mut *mut FaissIndexT,
    ) -> c_int,
    pub get_num_gpus: unsafe extern "C" fn(*mut c_int) -> c_int,
}

/// The loaded library: the C functions the Faiss backend calls.
pub struct FaissLib {
    /// What was loaded (the name or path given to the loader).
    pub path: String,
    pub index_factory:
        unsafe extern "C" fn(*mut *mut FaissIndexT, c_int, *const c_char, c_int) -> c_int,
    pub add_with_ids:
        unsafe extern "C" fn(*mut FaissIndexT, IdxT, *const f32, *const IdxT) -> c_int,
    pub search: unsafe extern "C" fn(
        *const FaissIndexT,
        IdxT,
        *const f32,
        IdxT,
        *mut f32,
        *mut IdxT,
    ) -> c_int,
    pub remove_ids:
        unsafe extern "C" fn(*mut FaissIndexT, *const FaissIdSelectorT, *mut usize) -> c_int,
    pub index_free: unsafe extern "C" fn(*mut FaissIndexT),
    pub id_selector_batch_new:
        unsafe extern "C" fn(*mut *mut FaissIdSelectorT, usize, *const IdxT) -> c_int,
    pub id_selector_free: unsafe extern "C" fn(*mut FaissIdSelectorT),
    pub get_last_error: unsafe extern "C" fn() -> *const c_char,
    pub gpu: Option<GpuApi>,
    /// Keeps the function pointers above valid.
    _lib: libloading::Library,
}

impl FaissLib {
    /// Faiss's last error message on this thread.
    pub fn last_error(&self) -> String {
        // SAFETY: Faiss returns a thread-local NUL-terminated string or NULL.
        unsafe {
            let p = (self.get_last_error)();
            if p.is_null() {
                "unknown Faiss error".into()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    /// GPUs Faiss sees (0 without the GPU API).
    pub fn gpu_count(&self) -> u32 {
        let Some(g) = &self.gpu else { return 0 };
        let mut n: c_int = 0;
        // SAFETY: valid out-pointer.
        let rc = unsafe { (g.get_num_gpus)(&mut n) };
        if rc == 0 {
            n.max(0) as u32
        } else {
            0
        }
    }
}

/// The library, loaded once per process.
pub fn get() -> Result<&'static FaissLib, FaissLibError> {
    static LIB: OnceLock<Result<FaissLib, FaissLibError>> = OnceLock::new();
    LIB.get_or_init(|| load(std::env::var(LIB_ENV).ok().as_deref()))
        .as_ref()
        .map_err(Clone::clone)
}

/// The names tried, best first (`override_` is `FB_FAISS_LIB`).
pub fn candidates(override_: Option<&str>) -> Vec<String> {
    if let Some(p) = override_.filter(|p| !p.is_empty()) {
        return vec![p.to_string()];
    }
    let mut names: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            names.push("libfaiss_c_avx512.so");
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            names.push("libfaiss_c_avx2.so");
        }
    }
    names.push("libfaiss_c.so");
    let mut out: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    if let Ok(prefix) = std::env::var("CONDA_PREFIX") {
        out.extend(names.iter().map(|n| format!("{prefix}/lib/{n}")));
    }
    out
}

/// Load the first candidate that opens and has the C API.
pub fn load(override_: Option<&str>) -> Result<FaissLib, FaissLibError> {
    let tried = candidates(override_);
    let mut last = String::new();
    for name in &tried {
        // SAFETY: loading a shared library runs its initialisers; Faiss's are plain C++
        // static constructors.
        match unsafe { libloading::Library::new(name) } {
            Ok(lib) => return bind(lib, name),
            Err(e) => last = e.to_string(),
        }
    }
    let tried = match override_.filter(|p| !p.is_empty()) {
        Some(_) => format!("{LIB_ENV}={}", tried.join(", ")),
        None => tried.join(", "),
    };
    Err(FaissLibError::NotFound {
        tried,
        detail: last,
    })
}

fn bind(lib: libloading::Library, path: &str) -> Result<FaissLib, FaissLibError> {
    macro_rules! sym {
        ($name:literal) => {{
            // SAFETY: the symbol is declared with the signature of faiss/c_api (1.7+).
            match unsafe { lib.get($name.as_bytes()) } {
                Ok(s) => *s,
                Err(e) => {
                    return Err(FaissLibError::MissingSymbol {
                        path: path.to_string(),
                        symbol: $name,
                        detail: e.to_string(),
                    })
                }
            }
        }};
    }
    macro_rules! opt {
        ($name:literal) => {{
            // SAFETY: as above; an absent symbol is None.
            unsafe { lib.get($name.as_bytes()) }.ok().map(|s| *s)
        }};
    }
    let gpu = match (
        opt!("faiss_StandardGpuResources_new"),
        opt!("faiss_StandardGpuResources_free"),
        opt!("faiss_index_cpu_to_gpu"),
        opt!("faiss_get_num_gpus"),
    ) {
        (Some(resources_new), Some(resources_free), Some(index_cpu_to_gpu), Some(get_num_gpus)) => {
            Some(GpuApi {
                resources_new,
                resources_free,
                index_cpu_to_gpu,
                get_num_gpus,
            })
        }
        _ => None,
    };
    Ok(FaissLib {
        path: path.to_string(),
        index_factory: sym!("faiss_index_factory"),
        add_with_ids: sym!("faiss_Index_add_with_ids"),
        search: sym!("faiss_Index_search"),
        remove_ids: sym!("faiss_Index_remove_ids"),
        index_free: sym!("faiss_Index_free"),
        id_selector_batch_new: sym!("faiss_IDSelectorBatch_new"),
        id_selector_free: sym!("faiss_IDSelector_free"),
        get_last_error: sym!("faiss_get_last_error"),
        gpu,
        _lib: lib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_is_the_only_candidate() {
        assert_eq!(
            candidates(Some("/x/libfaiss_c.so")),
            vec!["/x/libfaiss_c.so"]
        );
        assert!(candidates(None).iter().any(|c| c == "libfaiss_c.so"));
    }

    #[test]
    fn a_missing_library_names_what_to_load() {
        let e = load(Some("/nonexistent/libfaiss_c.so"))
            .err()
            .expect("not found");
        let m = e.to_string();
        assert!(m.contains("FB_FAISS_LIB=/nonexistent/libfaiss_c.so"), "{m}");
        assert!(m.contains("module load faiss"), "{m}");
        assert!(m.contains("libfaiss-dev"), "{m}");
        assert!(m.contains("conda"), "{m}");
    }

    #[test]
    fn a_library_without_the_c_api_is_named() {
        // libc opens but has no Faiss symbols.
        let e = load(Some("libc.so.6")).err().expect("not Faiss");
        assert!(
            matches!(
                &e,
                FaissLibError::MissingSymbol {
                    symbol: "faiss_index_factory",
                    ..
                }
            ),
            "{e}"
        );
    }
}
