"""Every configuration key acts, or `check-config` says it has no effect.

Pure unit tests of the registry (`hive_project.config.effects`) and of what `check-config` prints
(`hive_project.config.explain`); the effects themselves are shown in real processes by
tests/integration/test_config_effects.py and by the tests named in `SHOWN_BY` below.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

from hive_project.config import load_config
from hive_project.config.effects import BY_KEY, REGISTRY
from hive_project.config.explain import COMPATIBLE, explain, leaves, no_effect_lines, schema_keys, source_of

TESTS = Path(__file__).resolve().parent.parent
FIXTURES = TESTS / "fixtures"
GUIDE_FILES = (
    "guide_config_production.yaml",
    "guide_configmap.yaml",
    "guide_external_api_config.yaml",
    "guide_external_api_security.yaml",
)
GUIDE_SECRETS = {"JWT_SECRET_KEY": "j" * 40, "OAUTH2_CLIENT_ID": "client", "OAUTH2_CLIENT_SECRET": "secret"}
INTEGRATION = "integration/test_config_effects.py"

# For each key of the guide's files that acts: a test (file::function) that shows its effect.
SHOWN_BY = {
    # teams apart (issue 7)
    "security.event_streaming.allowed_origins": "streaming/test_stream_security.py::test_stream_origin_same_origin_and_configured_origins_may_use_the_session",
    "security.authentication_throttling.enabled": "api/test_auth_throttle.py::test_token_endpoint_locks_the_account_after_max_login_attempts_then_lets_it_in_again",
    "security.authentication_throttling.max_login_attempts": "api/test_auth_throttle.py::test_token_endpoint_locks_the_account_after_max_login_attempts_then_lets_it_in_again",
    "security.authentication_throttling.max_failures_per_address": "api/test_auth_throttle.py::test_token_endpoint_locks_an_address_that_tries_many_accounts",
    "security.authentication_throttling.failure_window": "api/test_auth_throttle.py::test_token_endpoint_locks_the_account_after_max_login_attempts_then_lets_it_in_again",
    "security.authentication_throttling.lockout_duration": "api/test_auth_throttle.py::test_token_endpoint_locks_the_account_after_max_login_attempts_then_lets_it_in_again",
    "monitoring.flower.username": "integration/test_flower.py::test_flower_takes_the_configured_password_and_flowers_own_variable",
    "monitoring.flower.password": "integration/test_flower.py::test_flower_takes_the_configured_password_and_flowers_own_variable",
    # sessions (issue 11)
    "external_api.agent_coordination.enabled": "unit/test_sessions.py::test_session_create_when_coordination_is_switched_off_is_refused",
    "external_api.agent_coordination.session_timeout": "unit/test_sessions.py::test_session_reconcile_past_the_deadline_times_the_session_out",
    "external_api.agent_coordination.max_participants": "unit/test_sessions.py::test_session_create_max_participants_comes_from_the_configuration",
    "external_api.agent_coordination.consensus_threshold": "unit/test_sessions.py::test_session_consensus_default_threshold_is_the_configured_one",
    # cost accounting and budgets (issue 11)
    "agents.<pool>.runner.cost_field": "integration/test_budgets.py::test_a_text_pool_reads_what_its_program_says_it_spent",
    "agents.<pool>.runner.cost_pattern": "integration/test_budgets.py::test_a_text_pool_reads_what_its_program_says_it_spent",
    "agents.<pool>.budget_usd_per_day": "integration/test_budgets.py::test_a_spent_pool_budget_holds_until_the_utc_day_turns",
    "multi_agent.budget_recheck_interval": "integration/test_budgets.py::test_a_spent_pool_budget_holds_until_the_utc_day_turns",
    # containment (issue 7)
    "agents.<pool>.runner.run_as": "containment/test_isolation.py::test_command_task_of_team_b_gets_nothing_of_team_a_or_of_the_hive",
    "agents.<pool>.runner.sandbox": "containment/test_isolation.py::test_prompt_task_runs_the_agent_program_as_the_pool_user_in_the_sandbox",
    "agents.<pool>.runner.sandbox_network": "containment/test_isolation.py::test_prompt_task_runs_the_agent_program_as_the_pool_user_in_the_sandbox",
    "system.runner_user": "containment/test_plan.py::test_plan_system_runner_user_applies_when_the_pool_names_none",
    # learning (issue 9)
    "external_api.intelligence_framework.enabled": "ml/test_strategy.py::test_predictive_switched_off_falls_back_though_a_model_is_active",
    "external_api.intelligence_framework.confidence_threshold": "ml/test_strategy.py::test_predictive_below_the_confidence_threshold_falls_back_to_performance_weighted",
    "external_api.intelligence_framework.learning_rate": "ml/test_decisions.py::test_finished_attempts_update_the_profile_at_the_configured_learning_rate",
    "external_api.intelligence_framework.pattern_recognition_enabled": "ml/test_patterns.py::test_pattern_recognition_off_training_publishes_no_pattern_and_no_routing_weight",
    "external_api.intelligence_framework.adaptive_learning_enabled": "ml/test_services.py::test_adaptive_learning_disabled_keeps_beat_from_training",
    "external_api.intelligence_framework.performance_tracking_enabled": "ml/test_decisions.py::test_performance_tracking_off_leaves_the_profiles_alone",
    "external_api.intelligent_task_allocation.enabled": "ml/test_strategy.py::test_predictive_switched_off_falls_back_though_a_model_is_active",
    "external_api.intelligent_task_allocation.allocation_timeout": "ml/test_strategy.py::test_predictive_slower_than_the_allocation_timeout_falls_back",
    "external_api.intelligent_task_allocation.performance_tracking_enabled": "ml/test_decisions.py::test_performance_tracking_off_leaves_the_profiles_alone",
    "external_api.ml_enhancements.pattern_optimizer.enabled": "ml/test_patterns.py::test_pattern_recognition_off_training_publishes_no_pattern_and_no_routing_weight",
    "external_api.ml_enhancements.pattern_optimizer.pattern_detection_sensitivity": "ml/test_patterns.py::test_insights_report_patterns_above_the_configured_sensitivity",
    "external_api.ml_enhancements.pattern_optimizer.optimization_aggressiveness": "ml/test_patterns.py::test_aggressiveness_zero_reports_only",
    "external_api.ml_enhancements.pattern_optimizer.learning_window_size": "ml/test_services.py::test_training_reads_the_newest_learning_window_size_attempts",
    "external_api.ml_enhancements.predictive_analytics.enabled": "ml/test_services.py::test_ml_retrain_if_due_trains_first_models_once_there_is_enough_history",
    "external_api.ml_enhancements.predictive_analytics.forecast_horizon_days": "ml/test_forecast.py::test_forecast_is_registered_and_read_back_for_the_horizon",
    "external_api.ml_enhancements.predictive_analytics.model_update_frequency": "ml/test_services.py::test_forecast_is_retrained_at_its_own_update_frequency",
    "external_api.ml_enhancements.adaptive_learning.enabled": "ml/test_services.py::test_adaptive_learning_disabled_keeps_beat_from_training",
    "external_api.ml_enhancements.adaptive_learning.adaptation_threshold": "ml/test_registry.py::test_retrained_model_not_better_by_the_adaptation_threshold_stays_inactive",
    "external_api.ml_enhancements.adaptive_learning.model_update_frequency": "ml/test_services.py::test_ml_retrain_if_due_trains_again_after_the_update_frequency",
    # scaling and flow (issue 10)
    "scaling.enabled": "unit/test_scaling_services.py::test_evaluate_disabled_does_nothing",
    "scaling.auto_scale": "unit/test_scaling_services.py::test_evaluate_without_auto_scale_only_recommends_once",
    "scaling.strategies.scale_up.threshold": "unit/test_scaling_policy.py::test_decide_table_gives_desired_and_reason",
    "scaling.strategies.scale_up.factor": "unit/test_scaling_policy.py::test_decide_table_gives_desired_and_reason",
    "scaling.strategies.scale_up.max_instances": "unit/test_scaling_policy.py::test_fleet_limit_over_max_agents_shares_fairly",
    "scaling.strategies.scale_down.threshold": "unit/test_scaling_policy.py::test_decide_table_gives_desired_and_reason",
    "scaling.strategies.scale_down.factor": "unit/test_scaling_policy.py::test_decide_table_gives_desired_and_reason",
    "scaling.strategies.scale_down.min_instances": "unit/test_scaling_services.py::test_evaluate_default_fleet_floor_holds_back_scale_down",
    "scaling.cooldown_minutes": "unit/test_scaling_services.py::test_evaluate_scale_down_waits_out_cooldown_after_last_decision",
    "scaling.interval_seconds": "unit/test_rate_limit.py::test_config_scaling_interval",
    "system.max_concurrent_tasks": "unit/test_scaling_policy.py::test_fleet_limit_over_concurrent_tasks_counts_slots",
    "multi_agent.max_agents": "unit/test_scaling_policy.py::test_fleet_limit_over_max_agents_shares_fairly",
    # alerts (issue 10)
    "external_api.performance_monitoring.enabled": "unit/test_alerts.py::test_monitoring_tick_disabled_samples_nothing_and_resolves_active_alerts",
    "external_api.performance_monitoring.monitoring_interval": "integration/test_alerts.py::test_a_worker_over_its_memory_threshold_raises_an_alert_posted_to_the_webhook_and_resolved_when_it_stops",
    "external_api.performance_monitoring.optimization_enabled": "unit/test_alerts.py::test_alerts_evaluate_without_optimization_carries_no_recommendation",
    "external_api.performance_monitoring.alert_thresholds.cpu_usage": "unit/test_alerts.py::test_heartbeat_reports_alert_levels_under_the_workers_thresholds",
    "external_api.performance_monitoring.alert_thresholds.memory_usage": "unit/test_alerts.py::test_heartbeat_reports_alert_levels_under_the_workers_thresholds",
    "external_api.performance_monitoring.alert_thresholds.task_queue_length": "unit/test_alerts.py::test_alerts_evaluate_queue_over_task_queue_length_raises_a_warning_with_advice",
    "resources.thresholds.warning": "integration/test_alerts.py::test_a_worker_over_its_memory_threshold_raises_an_alert_posted_to_the_webhook_and_resolved_when_it_stops",
    "resources.thresholds.critical": "unit/test_alerts.py::test_heartbeat_reports_alert_levels_under_the_workers_thresholds",
    "monitoring.alerts.enabled": "integration/test_alerts.py::test_a_worker_over_its_memory_threshold_raises_an_alert_posted_to_the_webhook_and_resolved_when_it_stops",
    "monitoring.alerts.webhook_url": "integration/test_alerts.py::test_a_worker_over_its_memory_threshold_raises_an_alert_posted_to_the_webhook_and_resolved_when_it_stops",
    "multi_agent.min_agents": "unit/test_scaling_policy.py::test_fleet_limit_minimum_holds_back_scale_down",
    "resources.monitoring.cpu": "unit/test_resources.py::test_sampler_skips_what_monitoring_disables",
    "resources.monitoring.memory": "unit/test_resources.py::test_sampler_skips_what_monitoring_disables",
    "resources.monitoring.disk": "unit/test_resources.py::test_sampler_skips_what_monitoring_disables",
    "resources.monitoring.network": "unit/test_resources.py::test_sampler_skips_what_monitoring_disables",
    "resources.monitoring.interval_seconds": "unit/test_resources.py::test_sampler_latest_samples_once_per_interval",
    "resources.allocation.cpu_limit_percent": "unit/test_resources.py::test_claim_gate_table",
    "resources.allocation.memory_limit_percent": "integration/test_flow_workers.py::test_a_worker_over_its_memory_limit_stops_claiming_and_the_task_runs_elsewhere",
    "resources.allocation.disk_limit_percent": "unit/test_resources.py::test_claim_gate_table",
    "agents.<pool>.max_concurrent": "integration/test_flow_workers.py::test_max_concurrent_holds_across_two_workers",
    "agents.<pool>.max_starts_per_minute": "integration/test_flow.py::test_starts_per_minute_refused_then_refunded",
    "agents.<pool>.runner.rate_limit.exit_codes": "unit/test_rate_limit.py::test_detect_table",
    "agents.<pool>.runner.rate_limit.output_pattern": "unit/test_rate_limit.py::test_detect_table",
    "agents.<pool>.runner.rate_limit.backoff_initial": "integration/test_flow_workers.py::test_a_rate_limited_program_pauses_the_pool_and_spends_no_attempt",
    "agents.<pool>.runner.rate_limit.backoff_max": "integration/test_flow.py::test_pause_backs_off_doubling_to_its_cap",
    "environment": f"{INTEGRATION}::test_production_with_the_guides_jwt_secret_key_check_config_and_start_up_agree_it_is_set",
    "system.log_level": f"{INTEGRATION}::test_logging_text_format_and_system_log_level_apply_when_logging_level_is_not_set",
    "system.debug_mode": f"{INTEGRATION}::test_debug_mode_follows_system_debug_mode_outside_production",
    "multi_agent.load_balancing_strategy": "unit/test_routing_strategies.py::test_route_with_least_loaded_sends_ui_task_to_the_idle_pool",
    "multi_agent.health_check_interval": "unit/test_transitions.py::test_agents_mark_offline_silent_agent_goes_offline_and_its_task_is_queued_again",
    "multi_agent.failure_threshold": "unit/test_transitions.py::test_agents_mark_offline_silent_agent_goes_offline_and_its_task_is_queued_again",
    "agents.<pool>.capabilities": "integration/test_routing.py::test_each_of_four_pools_receives_only_tasks_its_capabilities_cover",
    "agents.<pool>.max_instances": "api/test_config_effects.py::test_pool_bounds_follow_the_pools_min_and_max_instances",
    "external_api.enabled": "api/test_config_effects.py::test_external_api_off_turns_the_gateway_and_webhooks_off",
    "external_api.webhook_server.enabled": "webhooks/test_github.py::test_methods_content_types_and_the_switch_are_json_refusals",
    "external_api.webhook_server.port": f"{INTEGRATION}::test_serve_role_without_port_listens_on_the_configured_port",
    "external_api.webhook_server.host": f"{INTEGRATION}::test_serve_role_without_port_listens_on_the_configured_port",
    "external_api.webhook_server.rate_limit_per_minute": "webhooks/test_github.py::test_the_rate_limit_is_429_with_retry_after_and_stores_nothing",
    "external_api.webhook_server.max_payload_size": "webhooks/test_github.py::test_an_oversized_body_is_413_json",
    "external_api.webhook_server.endpoints[].path": "webhooks/test_github.py::test_the_configured_endpoint_rate_limit_applies",
    "external_api.webhook_server.endpoints[].rate_limit": "webhooks/test_github.py::test_the_configured_endpoint_rate_limit_applies",
    "external_api.api_gateway.enabled": "api/test_config_effects.py::test_external_api_off_turns_the_gateway_and_webhooks_off",
    "external_api.api_gateway.port": f"{INTEGRATION}::test_serve_role_without_port_listens_on_the_configured_port",
    "external_api.api_gateway.cors_enabled": "api/test_probes_and_metrics.py::test_cors_follows_the_gateway_configuration",
    "external_api.api_gateway.cors_origins": f"{INTEGRATION}::test_cors_keys_set_the_preflight_and_response_headers",
    "external_api.api_gateway.cors_methods": "api/test_probes_and_metrics.py::test_cors_follows_the_gateway_configuration",
    "external_api.api_gateway.cors_headers": "api/test_probes_and_metrics.py::test_cors_follows_the_gateway_configuration",
    "external_api.api_gateway.max_request_size": "api/test_tasks_api.py::test_body_over_the_cap_is_413_json_and_stores_nothing",
    "external_api.api_gateway.rate_limit_per_minute": "api/test_tasks_api.py::test_rate_limit_is_shared_in_redis_and_answers_429_with_retry_after",
    "external_api.api_gateway.routes[].path": "api/test_tasks_api.py::test_configured_route_limits_follow_the_guide",
    "external_api.api_gateway.routes[].rate_limit": "api/test_tasks_api.py::test_configured_route_limits_follow_the_guide",
    "external_api.event_streaming.enabled": "streaming/test_stream_config.py::test_streaming_off_refuses_the_websocket",
    "external_api.event_streaming.port": f"{INTEGRATION}::test_serve_role_without_port_listens_on_the_configured_port",
    "external_api.event_streaming.compression_enabled": "streaming/test_stream.py::test_compress_1_uses_the_configured_algorithm_and_nothing_when_disabled",
    "external_api.event_streaming.compression_algorithm": "streaming/test_stream.py::test_compress_1_uses_the_configured_algorithm_and_nothing_when_disabled",
    "external_api.event_streaming.batch_size": "streaming/test_stream.py::test_batches_of_batch_size_or_after_flush_interval",
    "external_api.event_streaming.flush_interval": "streaming/test_stream.py::test_batches_of_batch_size_or_after_flush_interval",
    "external_api.event_streaming.max_connections": "streaming/test_stream.py::test_max_connections_across_the_redis_count",
    "external_api.event_streaming.heartbeat_interval": "streaming/test_stream.py::test_heartbeat",
    "external_api.event_streaming.event_retention_hours": "api/test_config_effects.py::test_event_retention_deletes_events_older_than_the_configured_hours",
    "external_api.event_streaming.event_types": "streaming/test_stream.py::test_filters_on_connect_and_by_subscribe",
    "external_api.event_streaming.filters[].type": "streaming/test_stream.py::test_filters_on_connect_and_by_subscribe",
    "external_api.event_streaming.filters[].values": "streaming/test_stream.py::test_filters_on_connect_and_by_subscribe",
    "database.echo": f"{INTEGRATION}::test_database_echo_logs_every_statement_even_with_debug_off",
    "database.connection_pool_size": f"{INTEGRATION}::test_database_pool_keys_size_the_web_process_pool_and_a_pooled_query_runs",
    "database.max_overflow": f"{INTEGRATION}::test_database_pool_keys_size_the_web_process_pool_and_a_pooled_query_runs",
    "database.pool_timeout": f"{INTEGRATION}::test_database_pool_keys_size_the_web_process_pool_and_a_pooled_query_runs",
    "database.pool_recycle": f"{INTEGRATION}::test_database_pool_keys_size_the_web_process_pool_and_a_pooled_query_runs",
    "logging.level": f"{INTEGRATION}::test_logging_json_to_a_rotating_file_writes_one_object_per_line_and_rotates_by_size",
    "logging.format": f"{INTEGRATION}::test_logging_json_to_a_rotating_file_writes_one_object_per_line_and_rotates_by_size",
    "logging.handlers": f"{INTEGRATION}::test_logging_json_to_a_rotating_file_writes_one_object_per_line_and_rotates_by_size",
    "logging.file.path": f"{INTEGRATION}::test_logging_json_to_a_rotating_file_writes_one_object_per_line_and_rotates_by_size",
    "logging.file.max_size": f"{INTEGRATION}::test_logging_json_to_a_rotating_file_writes_one_object_per_line_and_rotates_by_size",
    "logging.file.backup_count": f"{INTEGRATION}::test_logging_json_to_a_rotating_file_writes_one_object_per_line_and_rotates_by_size",
    "logging.syslog.facility": f"{INTEGRATION}::test_logging_to_syslog_sends_datagrams_with_the_configured_facility",
    "logging.syslog.address": f"{INTEGRATION}::test_logging_to_syslog_sends_datagrams_with_the_configured_facility",
    "monitoring.enabled": "api/test_config_effects.py::test_metrics_answer_at_the_configured_path_and_not_when_turned_off",
    "monitoring.prometheus.enabled": "api/test_config_effects.py::test_metrics_answer_at_the_configured_path_and_not_when_turned_off",
    "monitoring.prometheus.path": "api/test_config_effects.py::test_metrics_answer_at_the_configured_path_and_not_when_turned_off",
    "security.webhook_server.request_validation.max_payload_size": "webhooks/test_github.py::test_an_oversized_body_is_413_json",
    "security.webhook_server.request_validation.required_headers": "api/test_config_effects.py::test_webhook_request_validation_refuses_missing_headers_and_content_types",
    "security.webhook_server.request_validation.allowed_content_types": "api/test_config_effects.py::test_webhook_request_validation_refuses_missing_headers_and_content_types",
    "security.api_gateway.authentication.jwt.secret_key": f"{INTEGRATION}::test_production_with_the_guides_jwt_secret_key_check_config_and_start_up_agree_it_is_set",
    "security.api_gateway.authentication.jwt.algorithm": f"{INTEGRATION}::test_jwt_keys_set_the_access_tokens_lifetime_issuer_and_algorithm",
    "security.api_gateway.authentication.jwt.expiration": f"{INTEGRATION}::test_jwt_keys_set_the_access_tokens_lifetime_issuer_and_algorithm",
    "security.api_gateway.authentication.jwt.issuer": f"{INTEGRATION}::test_jwt_keys_set_the_access_tokens_lifetime_issuer_and_algorithm",
    "security.api_gateway.cors.credentials": f"{INTEGRATION}::test_cors_keys_set_the_preflight_and_response_headers",
    "security.api_gateway.cors.max_age": f"{INTEGRATION}::test_cors_keys_set_the_preflight_and_response_headers",
    "security.api_gateway.cors.exposed_headers": f"{INTEGRATION}::test_cors_keys_set_the_preflight_and_response_headers",
    "security.api_gateway.request_validation.max_payload_size": f"{INTEGRATION}::test_gateway_body_cap_is_the_smaller_of_the_two_configured_sizes",
    "security.event_streaming.authentication.type": "streaming/test_stream.py::test_anonymous_viewers_when_streaming_auth_is_off_see_only_team_less_events",
    "security.event_streaming.authentication.token_header": "streaming/test_stream_config.py::test_stream_token_is_read_from_the_configured_header_and_prefix",
    "security.event_streaming.authentication.token_prefix": "streaming/test_stream_config.py::test_stream_token_is_read_from_the_configured_header_and_prefix",
    "security.event_streaming.access_control.subscription_auth_required": "streaming/test_stream.py::test_anonymous_viewers_when_streaming_auth_is_off_see_only_team_less_events",
}


def _test_functions(relative: str) -> set[str]:
    tree = ast.parse((TESTS / relative).read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_registry_has_every_leaf_key_of_the_schema_exactly_once():
    keys = list(schema_keys())
    registered = [effect.key for effect in REGISTRY]

    assert [key for key, n in Counter(registered).items() if n > 1] == []
    assert sorted(set(keys) - set(registered)) == [], "a key without an entry in hive_project/config/effects.py"
    assert sorted(set(registered) - set(keys)) == [], "an entry for a key the schema does not have"
    for effect in REGISTRY:
        assert bool(effect.inert) != bool(effect.reader), effect.key  # acts, or says why it does not


@pytest.mark.parametrize("name", GUIDE_FILES)
def test_guide_file_every_key_acts_in_a_named_test_or_check_config_says_it_has_none(name, tmp_path):
    path = tmp_path / name
    path.write_text((FIXTURES / name).read_text().replace('"predictive"', '"performance_weighted"'))
    config = load_config(path, environ=GUIDE_SECRETS)
    said = "\n".join(no_effect_lines(config))

    for leaf in leaves(config):
        if source_of(config, leaf.key) != "file":
            continue
        effect = BY_KEY[leaf.pattern]
        if effect.no_effect(config):
            assert f": {leaf.pattern} (" in said, f"check-config does not name {leaf.key}"
        else:
            shown = SHOWN_BY.get(leaf.pattern)
            assert shown, f"{leaf.key} acts, but no test is named as showing it"
            file, function = shown.split("::")
            assert function in _test_functions(file), f"{shown} does not exist"


def test_check_config_lines_are_one_per_key_and_name_the_reason(tmp_path):
    path = tmp_path / "hive.yaml"
    path.write_text(
        "external_api:\n  api_gateway:\n    request_timeout: 60\n  webhook_server:\n"
        "    endpoints:\n      - {path: /a, methods: [POST], auth_required: false, rate_limit: 5}\n"
        "      - {path: /b, methods: [PUT], rate_limit: 6}\n"
    )

    lines = no_effect_lines(load_config(path, environ={}))

    assert lines == [
        "accepted for compatibility with the guide, has no effect: external_api.webhook_server.endpoints[].methods "
        "(each webhook answers fixed methods (GitHub and Slack POST, custom POST and PUT))",
        "accepted for compatibility with the guide, has no effect: external_api.webhook_server.endpoints[].auth_required "
        "(every webhook is authenticated by its signature or a team's API key)",
        "accepted for compatibility with the guide, has no effect: external_api.api_gateway.request_timeout "
        "(gunicorn and uvicorn have no per-request timeout; set one at the proxy (nginx proxy_read_timeout))",
    ]


def test_check_config_names_keys_set_by_a_variable(tmp_path):
    empty = tmp_path / "hive.yaml"
    empty.write_text("")
    lines = no_effect_lines(
        load_config(
            empty,
            environ={
                "LEANVIBE_MONITORING_HEALTH_CHECK_PORT": "9000",
                "LEANVIBE_MONITORING_ALERTS_ENABLED": "true",
                "LEANVIBE_ML_PREDICTIVE_ANALYTICS_THRESHOLD": "0.9",
                "LEANVIBE_EXTERNAL_API_ML_ENHANCEMENTS_PREDICTIVE_ANALYTICS_FORECAST_HORIZON_DAYS": "3",
            },
        )
    )

    assert any(
        line.endswith(
            "no effect: monitoring.health_check_port (every web process serves /health and /ready on its own port)"
        )
        for line in lines
    )
    assert (
        "has no effect here: monitoring.alerts.enabled (monitoring.alerts.webhook_url is not set: nothing is posted)"
        in lines
    ), lines
    assert (
        f"{COMPATIBLE}: external_api.ml_enhancements.predictive_analytics.prediction_accuracy_threshold (a model is "
        "activated when it beats the baseline and the active version by adaptive_learning.adaptation_threshold, "
        "not by an absolute accuracy)" in lines
    ), lines
    assert not any("forecast_horizon_days" in line for line in lines), lines  # it acts: nothing to say
    assert not any("not read yet" in line for line in lines), lines


def test_no_key_waits_for_work_under_way_in_check_config_or_explain(tmp_path):
    path = tmp_path / "hive.yaml"
    path.write_text((FIXTURES / "guide_config_production.yaml").read_text())
    config = load_config(path, environ=GUIDE_SECRETS)

    said = "\n".join([*no_effect_lines(config), explain(config)])

    assert "not read yet" not in said and "work under way" not in said
    assert "external_api.intelligence_framework.enabled = True [file] -> read by ml.strategy" in said
    assert f"{COMPATIBLE}: agents.<pool>.resource_requirements.cpu_cores (a task is not placed by what it needs" in said


def test_system_log_level_has_no_effect_only_when_logging_level_is_set(tmp_path):
    both, only_system = tmp_path / "both.yaml", tmp_path / "system.yaml"
    both.write_text("system: {log_level: DEBUG}\nlogging: {level: WARNING}\n")
    only_system.write_text("system: {log_level: DEBUG}\n")

    assert "has no effect here: system.log_level (logging.level is set and wins)" in no_effect_lines(
        load_config(both, environ={})
    )
    assert no_effect_lines(load_config(only_system, environ={})) == []


def test_explain_lists_every_leaf_once_with_its_source(tmp_path):
    path = tmp_path / "hive.yaml"
    path.write_text("database: {url: 'postgresql://hive:pw123@db:5432/hive'}\n")
    config = load_config(path, environ={"LEANVIBE_SECURITY_API_KEY": "k" * 30})

    lines = explain(config).splitlines()

    assert len(lines) == len(list(leaves(config)))
    assert (
        "database.url = 'postgresql://hive:***@db:5432/hive' [file] -> read by hive_project.settings: "
        "DATABASES (SQLite in var/ when empty)" in lines
    )
    assert (
        "security.api_key = *** [LEANVIBE_SECURITY_API_KEY] -> read by hive_project.metrics: the token a "
        "Prometheus scraper sends" in lines
    )
    assert (
        "database.connection_pool_size = 4 [default] -> read by hive_project.settings: DATABASES OPTIONS pool "
        "min_size (the web process)" in lines
    )
    assert "pw123" not in "\n".join(lines) and "k" * 30 not in "\n".join(lines)
