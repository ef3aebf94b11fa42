//! The conformance suite's list of cases, and the macros that run them against one
//! engine. Every engine runs the same list, each as a module of the one test binary
//! (`main.rs`): one line per engine, and one arm of `lock_holder_child`:
//!
//! ```ignore
//! engine_suite!(mine, EngineConfig::Custom(Arc::new(MyFactory)));
//! lock_holder_child!(|suite: &str| match suite { "mine" => ..., ... });
//! ```
//!
//! `custom.rs` is such an engine, defined outside `state-core` through the public
//! seam alone (an engine of another crate copies these files and does the same).
//!
//! A new case is a `pub fn name(engine: &EngineConfig)` in `cases.rs`, `ttl.rs`,
//! `watch.rs`, `update.rs` or `lending.rs`, listed in [`engine_suite`]; a case left out of the list fails
//! `every_written_case_is_listed`.

/// Instantiates every conformance case as a `#[test]` for one engine: `$engine` is
/// anything that converts into a `state_core::EngineConfig`. It also adds
/// `every_written_case_is_listed`, which fails when a case module holds a case
/// (a `pub fn` taking `engine: &EngineConfig`) that no list below names.
macro_rules! engine_suite {
    ($module:ident, $engine:expr) => {
        mod $module {
            // `$engine` is written in the invoking module's scope.
            #[allow(unused_imports)]
            use super::*;

            /// The engine under test, with its options; notes this suite's name for
            /// the cases that run this binary again in a child process.
            fn engine() -> state_core::EngineConfig {
                crate::suite::enter(stringify!($module));
                ($engine).into()
            }
            suite_cases!(
                write_read_close_reopen,
                delete_missing_key_succeeds_and_reports_absent,
                delete_existing_key_reports_it_existed,
                empty_key_is_rejected_and_nothing_written,
                oversized_key_is_rejected,
                oversized_value_is_rejected_and_nothing_written,
                configured_value_limit_is_enforced,
                bad_bucket_names_are_rejected,
                seek_to_existing_key_returns_that_key,
                seek_between_keys_returns_the_next,
                seek_past_the_end_returns_none_then_prev_gives_last,
                walk_200_forward_then_back_arrives_at_same_key,
                next_n_and_prev_n_counts_and_end_of_range,
                first_and_last_on_empty_bucket,
                new_cursor_next_returns_first,
                next_past_end_then_prev_returns_last,
                prev_past_start_then_next_returns_first,
                cursor_steps_by_key_under_concurrent_writes,
                two_clients_buckets_are_isolated,
                get_multiple_omits_missing_keys,
                set_multiple_writes_all,
                set_multiple_with_a_bad_key_writes_nothing,
                set_multiple_over_batch_limit_is_too_large,
                len_counts_live_records,
                bucket_names_and_remove_bucket,
                iterators_full_reverse_range_prefix,
                iterator_ends_meet_in_the_middle,
                json_round_trip_and_type_mismatch,
                use_after_close_is_a_closed_error,
                second_open_in_process_shares_the_store,
                store_closes_with_its_last_handle,
                reopen_after_close_in_same_process,
                open_on_a_regular_file_fails_clearly,
                open_in_an_unwritable_place_fails_clearly,
                sync_mode_writes_are_readable_and_survive_reopen,
                concurrent_sync_writers_share_syncs_and_lose_nothing,
                flush_and_info_report_the_store,
                concurrent_writers_and_readers,
                persistence_round_trip_100k,
                locked_by_another_process,
                another_process_opens_right_after_close,
                random_operations_match_a_btreemap_model,
                large_values_survive_a_sync_mode_reopen,
            );
            module_cases!(
                ttl:
                expired_key_is_invisible_to_every_read,
                ttl_reports_missing_no_expiry_and_remaining,
                set_clears_an_existing_ttl,
                set_with_ttl_replaces_value_and_ttl,
                zero_ttl_is_invalid_and_writes_nothing,
                expire_on_a_missing_key_returns_false,
                expire_sets_and_refreshes_a_ttl,
                persist_removes_a_ttl,
                set_multiple_with_ttl_expires_the_batch,
                expiry_survives_reopen_as_absolute_time,
                delete_removes_the_ttl_too,
                background_sweeper_removes_expired_records,
                sweeping_expiring_among_persistent,
            );
            module_cases!(
                watch:
                watch_delivers_sets_and_deletes_in_commit_order,
                watch_sees_only_its_prefix_and_bucket,
                a_batch_arrives_as_its_events_in_order,
                events_follow_visibility,
                concurrent_writers_replay_to_the_stored_state,
                expiry_events_come_from_the_sweep_and_from_writes,
                events_say_whether_a_set_is_new_and_name_deadline_changes,
                a_stalled_watcher_gets_a_lag_notice_and_writers_go_on,
                a_watcher_is_bounded_in_bytes_and_may_take_keys_only,
                watchers_end_when_the_store_closes,
                ending_or_dropping_a_watcher_unregisters_it,
                removing_a_bucket_deletes_each_watched_key,
                watch_arguments_are_checked,
                labelled_events_come_in_the_writers_order,
                a_key_watch_sees_every_write_even_an_identical_one,
            );
            module_cases!(
                update:
                update_reads_computes_and_writes_once,
                update_keeps_or_sets_the_deadline,
                update_deletes_and_names_its_events,
                update_labels_reach_watchers_that_take_them,
                update_checks_its_arguments_and_refuses_writes_from_inside,
                concurrent_updates_lose_no_increment,
                update_many_is_that_many_updates,
                update_many_keeps_or_sets_deadlines,
                update_many_errors_write_nothing,
                concurrent_update_many_loses_no_increment,
            );
            module_cases!(
                lending:
                get_with_lends_the_value,
                get_multiple_with_lends_each_present_key_in_order,
                scan_visits_ranges_in_both_directions_and_stops,
                next_n_with_moves_like_next_n,
                callbacks_may_read_but_not_write_the_same_store,
                nested_read_does_not_deadlock_behind_a_waiting_writer,
                a_lent_value_is_stable_while_the_key_is_overwritten,
                a_panicking_callback_leaves_the_store_usable,
            );
        }
    };
}

/// Expands each case name into a `#[test]` calling `cases::<name>(&engine())`, and
/// the check that the list names every case of `cases`.
macro_rules! suite_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                crate::cases::$case(&engine());
            }
        )*

        #[test]
        fn every_written_case_is_listed() {
            crate::suite::assert_all_listed(
                "cases",
                crate::cases::SOURCE,
                &[$(stringify!($case)),*],
            );
        }
    };
}

/// Expands each case name of module `$module` (`ttl`, `lending`) into a `#[test]`
/// calling `$module::<name>(&engine())`, inside a module of that name, and the
/// check that the list names every case of `$module`.
macro_rules! module_cases {
    ($module:ident: $($case:ident),* $(,)?) => {
        mod $module {
            use super::engine;
            $(
                #[test]
                fn $case() {
                    crate::$module::$case(&engine());
                }
            )*

            #[test]
            fn every_written_case_is_listed() {
                crate::suite::assert_all_listed(
                    stringify!($module),
                    crate::$module::SOURCE,
                    &[$(stringify!($case)),*],
                );
            }
        }
    };
}

/// Adds the `lock_holder_child` test: not a test of its own but the child process of
/// `locked_by_another_process` and `another_process_opens_right_after_close`, which
/// run this test binary again. It acts only when started by them (environment
/// variables set); otherwise it returns. `$engine_named` maps the suite name the
/// parent passes (the first argument of [`engine_suite`]) to the engine's config.
macro_rules! lock_holder_child {
    ($engine_named:expr) => {
        #[test]
        fn lock_holder_child() {
            crate::cases::lock_holder_child_main($engine_named);
        }
    };
}

thread_local! {
    /// The engine suite (the first argument of [`engine_suite`]) whose case runs on
    /// this thread.
    static SUITE: std::cell::Cell<&'static str> = const { std::cell::Cell::new("") };
}

/// Notes that a case of suite `name` runs on this thread.
pub fn enter(name: &'static str) {
    SUITE.with(|s| s.set(name));
}

/// The suite whose case runs on this thread: what a case passes to the child
/// process it starts, whose `lock_holder_child` maps it back to the engine.
pub fn current() -> &'static str {
    SUITE.with(std::cell::Cell::get)
}

/// Fails unless `listed` names every case written in `source` (the text of case
/// module `module`): a case is a `pub fn` whose only parameter is
/// `engine: &EngineConfig`. A case that is written but not listed would never run.
pub fn assert_all_listed(module: &str, source: &str, listed: &[&str]) {
    let written: std::collections::BTreeSet<&str> = source
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("pub fn "))
        .filter_map(|rest| rest.split_once("(engine: &EngineConfig)"))
        .map(|(name, _)| name)
        .collect();
    let listed: std::collections::BTreeSet<&str> = listed.iter().copied().collect();
    let unlisted: Vec<&str> = written.difference(&listed).copied().collect();
    assert!(
        unlisted.is_empty(),
        "conformance cases written in {module}.rs but not listed in suite.rs: {unlisted:?}"
    );
    assert!(!written.is_empty(), "no cases found in {module}.rs");
}
