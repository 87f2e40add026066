//! Faiss in-process indexes (`backend: faiss`, `index: flat | hnsw`) through Faiss's C API,
//! behind the cargo feature `faiss`.
//!
//! The feature links `libfaiss_c` (Faiss built with `-DFAISS_ENABLE_C_API=ON`, or conda-forge's
//! `faiss-cpu`). Debian's `libfaiss-dev` 1.7.3 ships the C API *headers* but only the C++
//! static library `libfaiss.a` — no `faiss_*` C symbols — so on Debian the feature does not
//! link; without the feature the client reports that clearly.
//!
//! Indexes: `IDMap2,Flat` (exact; supports delete and update) and `IDMap2,HNSW{m}` (approximate;
//! Faiss's HNSW cannot remove vectors, so a mix with delete/update is refused at setup).
//! `scripts/build-faiss-c.sh` builds `libfaiss_c.so` from the C API sources against Debian's
//! libfaiss-dev for this machine.

use super::Backend;
use crate::recipe::{Service, VectorDbWorkload};
use crate::runner::client::{BoxFuture, ClientError, ErrorClass};
use crate::runner::clients::util::ReqError;

pub const NOT_BUILT: &str = "this binary was built without Faiss (cargo feature `faiss`)";

#[cfg(not(feature = "faiss"))]
pub struct Faiss;

#[cfg(not(feature = "faiss"))]
impl Faiss {
    pub fn new(_svc: &Service, _wl: &VectorDbWorkload) -> Result<Self, ClientError> {
        Err(ClientError::new(ErrorClass::Other, "setup", NOT_BUILT))
    }
}

#[cfg(not(feature = "faiss"))]
impl Backend for Faiss {
    type Conn = ();
    fn describe(&self) -> String {
        "faiss (not built)".into()
    }
    fn open(&self) -> Result<(), ClientError> {
        Err(ClientError::new(ErrorClass::Other, "setup", NOT_BUILT))
    }
    fn prepare<'a>(&'a self, _c: &'a ()) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async { Err(ClientError::new(ErrorClass::Other, "setup", NOT_BUILT)) })
    }
    fn insert<'a>(
        &'a self,
        _c: &'a (),
        _ids: &'a [u64],
        _vecs: &'a [&'a [f32]],
        _upsert: bool,
    ) -> BoxFuture<'a, Result<u64, ReqError>> {
        Box::pin(async { Err(ReqError::new(ErrorClass::Other, NOT_BUILT)) })
    }
    fn search<'a>(
        &'a self,
        _c: &'a (),
        _q: &'a [f32],
        _k: u32,
    ) -> BoxFuture<'a, Result<Vec<u64>, ReqError>> {
        Box::pin(async { Err(ReqError::new(ErrorClass::Other, NOT_BUILT)) })
    }
    fn delete<'a>(&'a self, _c: &'a (), _ids: &'a [u64]) -> BoxFuture<'a, Result<(), ReqError>> {
        Box::pin(async { Err(ReqError::new(ErrorClass::Other, NOT_BUILT)) })
    }
    fn drop_collection<'a>(&'a self, _c: &'a ()) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(feature = "faiss")]
pub use imp::Faiss;

#[cfg(feature = "faiss")]
mod imp {
    use super::*;
    use crate::recipe::{FaissIndex, VectorOp};
    use std::ffi::{c_char, c_int, CStr, CString};
    use std::sync::Mutex;

    #[repr(C)]
    struct FaissIndexT {
        _p: [u8; 0],
    }
    #[repr(C)]
    struct FaissIDSelector {
        _p: [u8; 0],
    }
    type IdxT = i64;
    const METRIC_L2: c_int = 1;

    #[link(name = "faiss_c")]
    extern "C" {
        fn faiss_index_factory(
            p_index: *mut *mut FaissIndexT,
            d: c_int,
            description: *const c_char,
            metric: c_int,
        ) -> c_int;
        fn faiss_Index_add_with_ids(
            index: *mut FaissIndexT,
            n: IdxT,
            x: *const f32,
            xids: *const IdxT,
        ) -> c_int;
        fn faiss_Index_search(
            index: *const FaissIndexT,
            n: IdxT,
            x: *const f32,
            k: IdxT,
            distances: *mut f32,
            labels: *mut IdxT,
        ) -> c_int;
        fn faiss_Index_remove_ids(
            index: *mut FaissIndexT,
            sel: *const FaissIDSelector,
            n_removed: *mut usize,
        ) -> c_int;
        fn faiss_Index_free(index: *mut FaissIndexT);
        fn faiss_IDSelectorBatch_new(
            p_sel: *mut *mut FaissIDSelector,
            n: usize,
            indices: *const IdxT,
        ) -> c_int;
        fn faiss_IDSelector_free(sel: *mut FaissIDSelector);
        fn faiss_get_last_error() -> *const c_char;
    }

    fn last_error() -> String {
        // SAFETY: Faiss returns a thread-local NUL-terminated string or NULL.
        unsafe {
            let p = faiss_get_last_error();
            if p.is_null() {
                "unknown Faiss error".into()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }

    struct Index(*mut FaissIndexT);
    // SAFETY: the index is only used under the Mutex below.
    unsafe impl Send for Index {}

    impl Drop for Index {
        fn drop(&mut self) {
            if !self.0.is_null() {
                // SAFETY: created by faiss_index_factory, freed once.
                unsafe { faiss_Index_free(self.0) }
            }
        }
    }

    pub struct Faiss {
        dim: u32,
        kind: FaissIndex,
        index: Mutex<Option<Index>>,
    }

    impl Faiss {
        pub fn new(_svc: &Service, wl: &VectorDbWorkload) -> Result<Self, ClientError> {
            if let FaissIndex::Hnsw { .. } = wl.index {
                let removes =
                    wl.mix.weights.iter().any(|(op, w)| {
                        *w > 0.0 && matches!(op, VectorOp::Delete | VectorOp::Update)
                    });
                if removes {
                    return Err(ClientError::new(
                        ErrorClass::Validation,
                        "setup",
                        "Faiss HNSW indexes cannot remove vectors: use an operation_mix of insert/search only, or index: flat",
                    ));
                }
            }
            Ok(Faiss {
                dim: wl.dimension,
                kind: wl.index,
                index: Mutex::new(None),
            })
        }

        fn description(&self) -> String {
            match self.kind {
                FaissIndex::Flat => "IDMap2,Flat".into(),
                FaissIndex::Hnsw { m } => format!("IDMap2,HNSW{m}"),
            }
        }

        fn with<T>(
            &self,
            f: impl FnOnce(*mut FaissIndexT) -> Result<T, ReqError>,
        ) -> Result<T, ReqError> {
            let g = self.index.lock().expect("lock");
            match g.as_ref() {
                Some(i) => f(i.0),
                None => Err(ReqError::new(ErrorClass::Other, "faiss index not created")),
            }
        }
    }

    fn check(rc: c_int) -> Result<(), ReqError> {
        if rc == 0 {
            Ok(())
        } else {
            Err(ReqError::new(ErrorClass::Other, last_error()))
        }
    }

    impl Backend for Faiss {
        type Conn = ();

        fn describe(&self) -> String {
            format!("faiss {} d={}", self.description(), self.dim)
        }

        fn open(&self) -> Result<(), ClientError> {
            Ok(())
        }

        fn prepare<'a>(&'a self, _c: &'a ()) -> BoxFuture<'a, Result<(), ClientError>> {
            Box::pin(async move {
                let desc = CString::new(self.description()).expect("no NUL");
                let mut p: *mut FaissIndexT = std::ptr::null_mut();
                // SAFETY: valid out-pointer and C string.
                let rc = unsafe {
                    faiss_index_factory(&mut p, self.dim as c_int, desc.as_ptr(), METRIC_L2)
                };
                if rc != 0 || p.is_null() {
                    return Err(ClientError::new(ErrorClass::Other, "setup", last_error()));
                }
                *self.index.lock().expect("lock") = Some(Index(p));
                Ok(())
            })
        }

        fn insert<'a>(
            &'a self,
            _c: &'a (),
            ids: &'a [u64],
            vecs: &'a [&'a [f32]],
            upsert: bool,
        ) -> BoxFuture<'a, Result<u64, ReqError>> {
            Box::pin(async move {
                if upsert {
                    self.delete_now(ids)?;
                }
                let flat: Vec<f32> = vecs.iter().flat_map(|v| v.iter().copied()).collect();
                let xids: Vec<IdxT> = ids.iter().map(|i| *i as IdxT).collect();
                self.with(|ix| {
                    // SAFETY: flat holds n*d floats, xids n ids.
                    check(unsafe {
                        faiss_Index_add_with_ids(
                            ix,
                            xids.len() as IdxT,
                            flat.as_ptr(),
                            xids.as_ptr(),
                        )
                    })
                })?;
                Ok((flat.len() * 4) as u64)
            })
        }

        fn search<'a>(
            &'a self,
            _c: &'a (),
            q: &'a [f32],
            k: u32,
        ) -> BoxFuture<'a, Result<Vec<u64>, ReqError>> {
            Box::pin(async move {
                let mut dist = vec![0f32; k as usize];
                let mut labels = vec![-1 as IdxT; k as usize];
                self.with(|ix| {
                    // SAFETY: q holds d floats; outputs hold k entries.
                    check(unsafe {
                        faiss_Index_search(
                            ix,
                            1,
                            q.as_ptr(),
                            k as IdxT,
                            dist.as_mut_ptr(),
                            labels.as_mut_ptr(),
                        )
                    })
                })?;
                Ok(labels
                    .into_iter()
                    .filter(|l| *l >= 0)
                    .map(|l| l as u64)
                    .collect())
            })
        }

        fn delete<'a>(&'a self, _c: &'a (), ids: &'a [u64]) -> BoxFuture<'a, Result<(), ReqError>> {
            Box::pin(async move { self.delete_now(ids) })
        }

        fn drop_collection<'a>(&'a self, _c: &'a ()) -> BoxFuture<'a, Result<(), ClientError>> {
            Box::pin(async move {
                self.index.lock().expect("lock").take();
                Ok(())
            })
        }
    }

    impl Faiss {
        fn delete_now(&self, ids: &[u64]) -> Result<(), ReqError> {
            let xids: Vec<IdxT> = ids.iter().map(|i| *i as IdxT).collect();
            self.with(|ix| {
                let mut sel: *mut FaissIDSelector = std::ptr::null_mut();
                // SAFETY: valid out-pointer; xids outlives the selector.
                check(unsafe { faiss_IDSelectorBatch_new(&mut sel, xids.len(), xids.as_ptr()) })?;
                let mut removed = 0usize;
                // SAFETY: index and selector are valid; selector freed right after.
                let rc = unsafe { faiss_Index_remove_ids(ix, sel, &mut removed) };
                unsafe { faiss_IDSelector_free(sel) };
                check(rc)
            })
        }
    }
}
