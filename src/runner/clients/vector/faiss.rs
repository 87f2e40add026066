//! Faiss in-process indexes (`backend: faiss`, `index: flat | hnsw`) through Faiss's C API,
//! loaded at run time from the site's `libfaiss_c` ([`super::faiss_lib`]): every build of
//! factorybench accepts `backend: faiss`; a node without the library fails setup with a message
//! that names what to load, and `doctor` checks for it.
//!
//! Indexes: `IDMap2,Flat` (exact; supports delete and update) and `IDMap2,HNSW{m}` (approximate;
//! Faiss's HNSW cannot remove vectors, so a mix with delete/update is refused at validation).
//! A flat index moves to GPU 0 when the library exports the GPU C API, Faiss sees a GPU and the
//! mix never removes vectors (GPU flat indexes cannot); otherwise it stays on the CPU and
//! `describe` says why.

use super::faiss_lib::{self, FaissGpuResourcesT, FaissIdSelectorT, FaissIndexT, FaissLib, IdxT};
use super::Backend;
use crate::recipe::{FaissIndex, Service, VectorDbWorkload, VectorOp};
use crate::runner::client::{BoxFuture, ClientError, ErrorClass};
use crate::runner::clients::util::ReqError;
use std::ffi::{c_int, CString};
use std::sync::Mutex;

/// Where the index lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Cpu { why: &'static str },
    Gpu { device: u32 },
}

struct Index {
    lib: &'static FaissLib,
    ptr: *mut FaissIndexT,
    /// The GPU resources a GPU index uses (freed after it).
    gpu_res: *mut FaissGpuResourcesT,
}
// SAFETY: the index is only used under the Mutex below.
unsafe impl Send for Index {}

impl Drop for Index {
    fn drop(&mut self) {
        // SAFETY: created by this library, freed once, the index before its resources.
        unsafe {
            if !self.ptr.is_null() {
                (self.lib.index_free)(self.ptr);
            }
            if let (false, Some(g)) = (self.gpu_res.is_null(), &self.lib.gpu) {
                (g.resources_free)(self.gpu_res);
            }
        }
    }
}

/// Whether the mix ever removes vectors (delete, or update = delete + insert).
pub fn mix_removes(wl: &VectorDbWorkload) -> bool {
    wl.mix
        .weights
        .iter()
        .any(|(op, w)| *w > 0.0 && matches!(op, VectorOp::Delete | VectorOp::Update))
}

pub struct Faiss {
    dim: u32,
    kind: FaissIndex,
    removes: bool,
    index: Mutex<Option<Index>>,
    placement: Mutex<Option<Placement>>,
}

impl Faiss {
    pub fn new(_svc: &Service, wl: &VectorDbWorkload) -> Result<Self, ClientError> {
        let removes = mix_removes(wl);
        if matches!(wl.index, FaissIndex::Hnsw { .. }) && removes {
            return Err(ClientError::new(
                ErrorClass::Validation,
                "setup",
                "Faiss HNSW indexes cannot remove vectors: use an operation_mix of insert/search only, or index: flat",
            ));
        }
        Ok(Faiss {
            dim: wl.dimension,
            kind: wl.index,
            removes,
            index: Mutex::new(None),
            placement: Mutex::new(None),
        })
    }

    fn description(&self) -> String {
        match self.kind {
            FaissIndex::Flat => "IDMap2,Flat".into(),
            FaissIndex::Hnsw { m } => format!("IDMap2,HNSW{m}"),
        }
    }

    /// Where the index went (after `prepare`).
    pub fn placement(&self) -> Option<Placement> {
        self.placement.lock().expect("lock").clone()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&'static FaissLib, *mut FaissIndexT) -> Result<T, ReqError>,
    ) -> Result<T, ReqError> {
        let g = self.index.lock().expect("lock");
        match g.as_ref() {
            Some(i) => f(i.lib, i.ptr),
            None => Err(ReqError::new(ErrorClass::Other, "faiss index not created")),
        }
    }

    /// Move a CPU index to GPU 0 when it can go there; else say why it stays.
    fn place(&self, lib: &'static FaissLib, cpu: Index) -> Result<(Index, Placement), ClientError> {
        let why = match &lib.gpu {
            None => Some("the Faiss library has no GPU C API"),
            Some(_) if self.kind != FaissIndex::Flat => Some("Faiss has no GPU HNSW index"),
            Some(_) if self.removes => {
                Some("GPU flat indexes cannot remove vectors (the mix deletes or updates)")
            }
            Some(_) if lib.gpu_count() == 0 => Some("Faiss sees no GPU"),
            Some(_) => None,
        };
        let (Some(g), None) = (&lib.gpu, why) else {
            return Ok((
                cpu,
                Placement::Cpu {
                    why: why.unwrap_or_default(),
                },
            ));
        };
        let mut res: *mut FaissGpuResourcesT = std::ptr::null_mut();
        let mut gpu: *mut FaissIndexT = std::ptr::null_mut();
        // SAFETY: valid out-pointers; the CPU index is valid and freed after the copy.
        unsafe {
            if (g.resources_new)(&mut res) != 0 || res.is_null() {
                return Err(ClientError::new(
                    ErrorClass::Other,
                    "setup",
                    lib.last_error(),
                ));
            }
            if (g.index_cpu_to_gpu)(res, 0, cpu.ptr, &mut gpu) != 0 || gpu.is_null() {
                let e = lib.last_error();
                (g.resources_free)(res);
                return Err(ClientError::new(ErrorClass::Other, "setup", e));
            }
        }
        drop(cpu);
        Ok((
            Index {
                lib,
                ptr: gpu,
                gpu_res: res,
            },
            Placement::Gpu { device: 0 },
        ))
    }
}

fn check(lib: &FaissLib, rc: c_int) -> Result<(), ReqError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(ReqError::new(ErrorClass::Other, lib.last_error()))
    }
}

impl Backend for Faiss {
    type Conn = ();

    fn describe(&self) -> String {
        let at = match self.placement() {
            Some(Placement::Gpu { device }) => format!(" on GPU {device}"),
            Some(Placement::Cpu { why }) => format!(" on CPU ({why})"),
            None => String::new(),
        };
        format!("faiss {} d={}{at}", self.description(), self.dim)
    }

    fn open(&self) -> Result<(), ClientError> {
        faiss_lib::get()
            .map(|_| ())
            .map_err(|e| ClientError::new(ErrorClass::Other, "setup", e.to_string()))
    }

    fn prepare<'a>(&'a self, _c: &'a ()) -> BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async move {
            let lib = faiss_lib::get()
                .map_err(|e| ClientError::new(ErrorClass::Other, "setup", e.to_string()))?;
            let desc = CString::new(self.description()).expect("no NUL");
            let mut p: *mut FaissIndexT = std::ptr::null_mut();
            // SAFETY: valid out-pointer and C string.
            let rc = unsafe {
                (lib.index_factory)(
                    &mut p,
                    self.dim as c_int,
                    desc.as_ptr(),
                    faiss_lib::METRIC_L2,
                )
            };
            if rc != 0 || p.is_null() {
                return Err(ClientError::new(
                    ErrorClass::Other,
                    "setup",
                    lib.last_error(),
                ));
            }
            let cpu = Index {
                lib,
                ptr: p,
                gpu_res: std::ptr::null_mut(),
            };
            let (index, placement) = self.place(lib, cpu)?;
            *self.index.lock().expect("lock") = Some(index);
            *self.placement.lock().expect("lock") = Some(placement);
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
            self.with(|lib, ix| {
                // SAFETY: flat holds n*d floats, xids n ids.
                check(lib, unsafe {
                    (lib.add_with_ids)(ix, xids.len() as IdxT, flat.as_ptr(), xids.as_ptr())
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
            self.with(|lib, ix| {
                // SAFETY: q holds d floats; outputs hold k entries.
                check(lib, unsafe {
                    (lib.search)(
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
        self.with(|lib, ix| {
            let mut sel: *mut FaissIdSelectorT = std::ptr::null_mut();
            // SAFETY: valid out-pointer; xids outlives the selector.
            check(lib, unsafe {
                (lib.id_selector_batch_new)(&mut sel, xids.len(), xids.as_ptr())
            })?;
            let mut removed = 0usize;
            // SAFETY: index and selector are valid; selector freed right after.
            let rc = unsafe { (lib.remove_ids)(ix, sel, &mut removed) };
            unsafe { (lib.id_selector_free)(sel) };
            check(lib, rc)
        })
    }
}
