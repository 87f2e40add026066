//! All integration tests in one binary (one link instead of one per file): each file is a module.
//! Shared helpers live in the helper modules below; real servers come from scripts/test-env.sh.
//! The recipe fuzzer (tests/fuzz_recipes.rs) stays a binary of its own: it installs a counting
//! global allocator to bound each case's memory, which must not see other tests' allocations.

mod common;
mod data_common;
mod llm_support;
mod reportdb;
mod weaviate_fixture;

mod architecture;
mod capacity_history;
mod cli;
mod compare_judgement;
mod compile_cli;
mod data_postgres;
mod data_run;
mod data_s3;
mod data_vector;
mod docs_commands;
mod doctor_cli;
mod durability_kill;
mod generator_ceiling;
mod hostile_cli;
mod hostile_values;
mod library_session;
mod llm;
mod llm_run;
mod migrating_workflow;
mod monitor_alerts;
mod monitor_live_run;
mod monitor_push;
mod monitor_slurm;
mod monitor_stack;
mod nim;
mod open_loop;
mod placement;
mod placement_matrix;
mod podman_lifecycle;
mod ready_cli;
mod recipe_consistency;
mod recipe_errors;
mod recipe_plan;
mod render_scripts;
mod repeated_runs;
mod report_analysis;
mod report_compare;
mod report_formats;
mod report_html;
mod run;
mod run_files_published;
mod run_http_close;
mod run_starts_service;
mod script_signals;
mod secret_tracing;
mod service_selection;
mod slurm_cluster;
mod slurm_faults;
mod slurm_matrix;
mod slurm_memory;
mod slurm_multinode;
mod store_full_disk;
mod tensor_infer;
