"""The external API sections (webhooks, gateway, streaming, intelligence) and the security file."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from hive_project.config.types import (
    Capabilities,
    Float,
    Fraction,
    HttpMethod,
    HttpPath,
    Int,
    NonEmpty,
    Origins,
    Port,
    Secret,
    Size,
    Strategy,
    StreamOrigins,
    UpdateFrequency,
    _http_url,
    _redis_url,
    _Section,
    parse_size,
)


class IntelligenceFrameworkConfig(_Section):
    enabled: bool = True
    confidence_threshold: Fraction = 0.85
    learning_rate: Float = Field(0.005, gt=0, le=1)
    pattern_recognition_enabled: bool = True
    adaptive_learning_enabled: bool = True
    performance_tracking_enabled: bool = True


class IntelligentTaskAllocationConfig(_Section):
    enabled: bool = True
    load_balancing_strategy: Strategy = "performance_weighted"
    allocation_timeout: Float = Field(60.0, gt=0)
    performance_tracking_enabled: bool = True


class AgentCoordinationConfig(_Section):
    enabled: bool = True
    session_timeout: Float = Field(600.0, gt=0)
    max_participants: Int = Field(10, ge=1)
    consensus_threshold: Float = Field(0.7, gt=0, le=1)


class AlertThresholdsConfig(_Section):
    cpu_usage: Fraction = 0.85
    memory_usage: Fraction = 0.90
    task_queue_length: Int = Field(100, ge=0)


class PerformanceMonitoringConfig(_Section):
    enabled: bool = True
    monitoring_interval: Float = Field(30.0, gt=0)
    optimization_enabled: bool = True
    alert_thresholds: AlertThresholdsConfig = AlertThresholdsConfig()


class EndpointConfig(_Section):
    path: HttpPath
    methods: list[HttpMethod] = Field(min_length=1)
    auth_required: bool = True
    rate_limit: Int | None = Field(None, gt=0)  # requests per minute


class GithubWebhookConfig(_Section):
    secret: Secret = None
    secrets_previous: list[str] = []  # still accepted while a rotation is under way
    task_labels: list[str] = ["hive"]  # an issue with one of these labels becomes a task
    command_prefix: NonEmpty = "/hive"  # a comment starting with it becomes a task
    capabilities: Capabilities = ["python"]


class SlackWebhookConfig(_Section):
    signing_secret: Secret = None
    signing_secrets_previous: list[str] = []
    command: NonEmpty = "/hive"
    capabilities: Capabilities = ["python"]


def _guide_endpoints() -> list[EndpointConfig]:
    return [
        EndpointConfig(path="/github/webhook", methods=["POST"], rate_limit=50),
        EndpointConfig(path="/slack/webhook", methods=["POST"], rate_limit=30),
        EndpointConfig(path="/custom/webhook", methods=["POST", "PUT"], auth_required=False, rate_limit=20),
    ]


def _guide_routes() -> list[EndpointConfig]:
    return [
        EndpointConfig(path="/api/v1/agents", methods=["GET", "POST"], rate_limit=100),
        EndpointConfig(path="/api/v1/tasks", methods=["GET", "POST", "PUT", "DELETE"], rate_limit=200),
        EndpointConfig(path="/api/v1/status", methods=["GET"], auth_required=False, rate_limit=50),
    ]


class WebhookServerConfig(_Section):
    enabled: bool = True
    port: Port = 8081
    host: NonEmpty = "0.0.0.0"
    rate_limit_per_minute: Int = Field(100, gt=0)
    authentication_required: bool = True
    cors_origins: Origins = []
    max_payload_size: Size = "10MB"
    request_timeout: Float = Field(30.0, gt=0)
    endpoints: list[EndpointConfig] = Field(default_factory=_guide_endpoints)
    github: GithubWebhookConfig = GithubWebhookConfig()
    slack: SlackWebhookConfig = SlackWebhookConfig()

    @property
    def max_payload_bytes(self) -> int:
        return parse_size(self.max_payload_size)


class ApiGatewayConfig(_Section):
    enabled: bool = True
    port: Port = 8082
    cors_enabled: bool = True
    cors_origins: Origins = ["*"]
    cors_methods: list[HttpMethod] = ["GET", "POST", "PUT", "DELETE"]
    cors_headers: list[NonEmpty] = ["Content-Type", "Authorization"]
    authentication_provider: Literal["jwt", "api_key", "oauth2"] = "jwt"
    request_timeout: Float = Field(30.0, gt=0)
    max_request_size: Size = "10MB"
    rate_limit_per_minute: Int = Field(500, gt=0)
    routes: list[EndpointConfig] = Field(default_factory=_guide_routes)

    @field_validator("authentication_provider")
    @classmethod
    def _implemented(cls, value: str) -> str:
        if value == "oauth2":  # accepting it would promise a sign-in flow the hive does not have
            raise ValueError("jwt or api_key (OAuth2 sign-in is not implemented; the gateway takes API keys and JWTs)")
        return value

    @property
    def max_request_bytes(self) -> int:
        return parse_size(self.max_request_size)


class StreamFilterConfig(_Section):
    type: NonEmpty
    values: list[str]


class EventStreamingConfig(_Section):
    enabled: bool = True
    port: Port = 8083
    compression_enabled: bool = True
    compression_algorithm: Literal["gzip", "deflate", "zlib"] = "gzip"
    batch_size: Int = Field(10, ge=1, le=10000)
    flush_interval: Float = Field(5.0, gt=0)
    max_connections: Int = Field(1000, gt=0)
    heartbeat_interval: Float = Field(30.0, gt=0)
    event_retention_hours: Float = Field(24.0, gt=0)
    event_types: list[NonEmpty] = []  # empty: every type
    filters: list[StreamFilterConfig] = []


class PatternOptimizerConfig(_Section):
    enabled: bool = True
    pattern_detection_sensitivity: Fraction = 0.8
    optimization_aggressiveness: Fraction = 0.6
    learning_window_size: Int = Field(5000, gt=0)


class PredictiveAnalyticsConfig(_Section):
    enabled: bool = True
    prediction_accuracy_threshold: Fraction = 0.9
    forecast_horizon_days: Int = Field(60, gt=0)
    model_update_frequency: UpdateFrequency = "daily"


class AdaptiveLearningConfig(_Section):
    enabled: bool = True
    learning_rate: Float = Field(0.005, gt=0, le=1)
    adaptation_threshold: Fraction = 0.15
    model_update_frequency: UpdateFrequency = "hourly"


class MlEnhancementsConfig(_Section):
    pattern_optimizer: PatternOptimizerConfig = PatternOptimizerConfig()
    predictive_analytics: PredictiveAnalyticsConfig = PredictiveAnalyticsConfig()
    adaptive_learning: AdaptiveLearningConfig = AdaptiveLearningConfig()


class ExternalApiConfig(_Section):
    enabled: bool = True
    intelligence_framework: IntelligenceFrameworkConfig = IntelligenceFrameworkConfig()
    intelligent_task_allocation: IntelligentTaskAllocationConfig = IntelligentTaskAllocationConfig()
    agent_coordination: AgentCoordinationConfig = AgentCoordinationConfig()
    performance_monitoring: PerformanceMonitoringConfig = PerformanceMonitoringConfig()
    webhook_server: WebhookServerConfig = WebhookServerConfig()
    api_gateway: ApiGatewayConfig = ApiGatewayConfig()
    event_streaming: EventStreamingConfig = EventStreamingConfig()
    ml_enhancements: MlEnhancementsConfig = MlEnhancementsConfig()


# --- security (the guide's external-api-security.yaml, plus the hive's own secrets) ---------------


class WebhookAuthenticationConfig(_Section):
    type: Literal["api_key", "token", "none"] = "api_key"
    header_name: NonEmpty = "X-API-Key"
    validation_endpoint: HttpPath | None = "/auth/validate"


class RateLimitingConfig(_Section):
    storage: Literal["redis", "memory"] = "redis"
    redis_url: Annotated[str | None, AfterValidator(_redis_url)] = None  # None: redis.url
    global_limit: Int = Field(1000, gt=0)  # requests per minute
    per_endpoint_limit: Int = Field(100, gt=0)


class WebhookRequestValidationConfig(_Section):
    max_payload_size: Size = "5MB"
    # GitHub sends no X-API-Key and Slack posts forms, so the guide's lists would refuse both.
    required_headers: list[NonEmpty] = ["Content-Type"]
    allowed_content_types: list[NonEmpty] = ["application/json", "application/x-www-form-urlencoded"]

    @property
    def max_payload_bytes(self) -> int:
        return parse_size(self.max_payload_size)


class RequestLoggingConfig(_Section):
    log_requests: bool = True
    log_responses: bool = False
    log_errors: bool = True
    sensitive_headers: list[NonEmpty] = ["Authorization", "X-API-Key", "X-Hub-Signature-256", "X-Slack-Signature"]


class WebhookSecurityConfig(_Section):
    authentication: WebhookAuthenticationConfig = WebhookAuthenticationConfig()
    rate_limiting: RateLimitingConfig = RateLimitingConfig()
    request_validation: WebhookRequestValidationConfig = WebhookRequestValidationConfig()
    logging: RequestLoggingConfig = RequestLoggingConfig()


class JwtConfig(_Section):
    secret_key: Secret = None
    algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    expiration: Int = Field(3600, gt=0)  # seconds
    issuer: NonEmpty = "agent-hive"


class OAuth2Config(_Section):
    provider: NonEmpty = "custom"
    authorization_url: Annotated[str | None, AfterValidator(_http_url)] = None
    token_url: Annotated[str | None, AfterValidator(_http_url)] = None
    client_id: Secret = None
    client_secret: Secret = None


class GatewayAuthenticationConfig(_Section):
    jwt: JwtConfig = JwtConfig()
    oauth2: OAuth2Config = OAuth2Config()


class GatewayCorsConfig(_Section):
    credentials: bool = False  # the guide says true, which browsers refuse beside the default origin '*'
    max_age: Int = Field(86400, ge=0)
    exposed_headers: list[NonEmpty] = ["X-Request-ID", "X-Rate-Limit"]


class GatewayRequestValidationConfig(_Section):
    max_payload_size: Size = "10MB"
    validate_json: bool = True
    sanitize_input: bool = True

    @property
    def max_payload_bytes(self) -> int:
        return parse_size(self.max_payload_size)


class GatewaySecurityConfig(_Section):
    authentication: GatewayAuthenticationConfig = GatewayAuthenticationConfig()
    cors: GatewayCorsConfig = GatewayCorsConfig()
    request_validation: GatewayRequestValidationConfig = GatewayRequestValidationConfig()


class StreamingAuthenticationConfig(_Section):
    type: Literal["token", "none"] = "token"
    token_header: NonEmpty = "Authorization"
    token_prefix: NonEmpty = "Bearer"


class StreamingEncryptionConfig(_Section):
    enabled: bool = False  # the hive does not encrypt events itself: TLS (wss://) at the proxy does
    algorithm: Literal["AES-256-GCM"] = "AES-256-GCM"
    key_rotation_interval: Int = Field(86400, gt=0)  # seconds


class StreamingAccessControlConfig(_Section):
    subscription_auth_required: bool = True
    publish_auth_required: bool = True
    admin_endpoints_auth_required: bool = True


class StreamingSecurityConfig(_Section):
    authentication: StreamingAuthenticationConfig = StreamingAuthenticationConfig()
    encryption: StreamingEncryptionConfig = StreamingEncryptionConfig()
    access_control: StreamingAccessControlConfig = StreamingAccessControlConfig()
    # Browser pages from these origins may open the stream, besides the server's own (never '*').
    allowed_origins: StreamOrigins = []


class AuthenticationThrottlingConfig(_Section):
    """Failed sign-ins and bad API keys, counted in Redis; too many lock the account or address out."""

    enabled: bool = True
    max_login_attempts: Int = Field(5, gt=0)  # failed password logins per account within failure_window
    max_failures_per_address: Int = Field(20, gt=0)  # failed logins and bad API keys from one address
    failure_window: Int = Field(900, gt=0)  # seconds over which failures are counted
    lockout_duration: Int = Field(900, gt=0)  # seconds an account or address stays locked out


class SecurityConfig(_Section):
    secret_key: Secret = None  # Django's SECRET_KEY; required in production
    api_key: Secret = None
    jwt_signing_key: Secret = None
    webhook_server: WebhookSecurityConfig = WebhookSecurityConfig()
    api_gateway: GatewaySecurityConfig = GatewaySecurityConfig()
    event_streaming: StreamingSecurityConfig = StreamingSecurityConfig()
    authentication_throttling: AuthenticationThrottlingConfig = AuthenticationThrottlingConfig()

    @property
    def effective_jwt_signing_key(self) -> str | None:
        """The key that signs JWTs: `jwt_signing_key`, else the guide's `api_gateway.authentication.jwt.
        secret_key`; never `secret_key`, so rotating one never invalidates the other. None: outside
        production the settings generate one in var/; production refuses to start. The settings and
        `check-config` both ask this property."""
        return self.jwt_signing_key or self.api_gateway.authentication.jwt.secret_key
