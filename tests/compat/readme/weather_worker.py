# The README's "Loading Plugins" (by list, configurator or directory: argv[1]) and
# "Logging" fragments, serving the agent my_plugins/weather.py's WeatherPlugin configures.
# python weather_worker.py list|configurator|directory
import logging
import sys

from byway import AgentContext, GatewayWorker, run_worker
from byway.common.logger import setup_logging

setup_logging(level=logging.INFO, use_json=True)  # JSON for log aggregation
log = logging.getLogger("weather_worker")


class MyAgent(GatewayWorker):
    def get_agent_types(self):
        return ["weather_agent"]

    async def process_command(self, command, context: AgentContext):
        config = context.agent_config
        weather = await config.tools["get_weather"](str(command.content))
        log.info("weather for %s", command.content)
        return {"status": "completed", "content": config.prompts["system"], "reply_data": weather}


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "list":
        sys.path.insert(0, "my_plugins")
        from weather import WeatherPlugin

        # 1. Explicit list
        run_worker(MyAgent, plugin_list=[WeatherPlugin()])
    elif mode == "configurator":
        sys.path.insert(0, "my_plugins")
        from weather import WeatherPlugin

        # 2. Configurator callback
        def setup(registry):
            registry.register_bundle(WeatherPlugin())
        run_worker(MyAgent, plugin_configurator=setup)
    else:
        # 3. Directory scan (startup-time)
        run_worker(MyAgent, plugin_dir="./my_plugins")
