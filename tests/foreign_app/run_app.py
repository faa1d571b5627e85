"""A host application's worker with printroom added as a plugin: its own task queue, its own `workflows` module
and workflow, printroom's OrderWorkflow on the same worker. Prints what it saw as one JSON line.

    python run_app.py ADDRESS SETTINGS.toml ORDER.json
"""

import asyncio
import json
import os
import sys

from temporalio.client import Client
from temporalio.worker import Worker

import templates
import workflows
from printroom import PrintroomPlugin


async def main(address: str, settings_file: str, order_file: str) -> dict:
    client = await Client.connect(address, plugins=[PrintroomPlugin(settings_file)])
    order = json.loads(open(order_file, encoding="utf-8").read())
    async with Worker(client, task_queue="shop-app", workflows=[workflows.GreetCustomer]):
        greeting = await client.execute_workflow(
            workflows.GreetCustomer.run, order["customer"]["name"], id=f"greet-{order['id']}", task_queue="shop-app"
        )
        handle = await client.start_workflow("OrderWorkflow", order, id=f"order-{order['id']}", task_queue="shop-app")
        await handle.signal("change_status", {"trigger": "cancel", "by": "shop-app"})
        state = await handle.result()
    import printroom

    return {
        "greeting": greeting,
        "status": state["status"],
        "emails_sent": [e["email_trigger"] for e in state["emails_sent"]],
        "printroom": printroom.__file__,
        "workflows": workflows.__file__,
        "templates": templates.__file__,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:4]))), flush=True)
    os._exit(0)  # temporalio can crash the interpreter at exit (sdk-python issue 300)
