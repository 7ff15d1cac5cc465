"""The parts of :class:`byway.client.GatewayClient`, one concern per module."""
