from django.contrib import admin, messages

from agents.models import Agent, AgentPool
from agents.services import agent_drain


@admin.register(AgentPool)
class AgentPoolAdmin(admin.ModelAdmin):
    list_display = ("name", "capability_list", "concurrency", "min_instances", "max_instances", "allow_commands",
                    "enabled", "program_status")  # fmt: skip
    list_filter = ("enabled", "allow_commands")
    search_fields = ("name",)
    readonly_fields = ("name", "capabilities", "runner", "workspace", "created_at", "updated_at")

    @admin.display(description="capabilities")
    def capability_list(self, pool: AgentPool) -> str:
        return ", ".join(pool.capabilities)

    @admin.display(description="agent program")
    def program_status(self, pool: AgentPool) -> str:
        return pool.program_missing() or f"{pool.program() or 'python'}: installed"


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "pool", "status", "load", "concurrency", "last_heartbeat", "host", "pid")
    list_filter = ("status", "pool")
    search_fields = ("name", "host")
    readonly_fields = ("name", "pool", "host", "pid", "incarnation", "concurrency", "load", "resources",
                       "last_heartbeat", "started_at", "stopped_at")  # fmt: skip
    actions = ["drain"]

    @admin.action(description="Drain: stop taking new tasks")
    def drain(self, request, queryset) -> None:
        for agent in queryset.select_related("pool"):
            agent_drain(agent=agent)
        self.message_user(request, f"draining {queryset.count()} agent(s)", messages.SUCCESS)
