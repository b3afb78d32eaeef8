"""The MQTT broker side of the fleet: Mosquitto's accounts, ACL, dev TLS and launchers.

``passwords`` provisions accounts in Mosquitto's password file and signals the
broker to reload; ``certs`` makes development TLS material; ``acl_rules`` is
Mosquitto's ACL semantics. For tests and ``cctv up`` (``dev_broker`` is what
both share): ``launcher`` runs a real Mosquitto from the project's
``mosquitto.conf`` as ``runtime_config`` rewrites it, and ``embedded`` runs
amqtt with the accounts and ACL enforced by ``amqtt_plugins``.
The ACL itself is the ``acl`` file next to this one.

Nothing here imports ``edge_node`` or ``cloud_service``, and nothing here ever
logs a password or a password hash.
"""
