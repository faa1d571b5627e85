"""A host application's own module named `workflows`, as most Temporal applications have one."""

from temporalio import workflow


@workflow.defn(name="GreetCustomer")
class GreetCustomer:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"Grüß Gott, {name}"
