"""MQTT and SMTP adapters against real servers."""

from __future__ import annotations

import json
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from jetbridge.notify.email import SmtpSettings, send_email
from jetbridge.notify.mqtt import MqttAddress, MqttPublisher
from support.servers import smtp_server


def retained(url: str, topic_filter: str, *, wait: float = 1.0) -> dict[str, bytes]:
    address = MqttAddress.parse(url)
    seen: dict[str, bytes] = {}
    lock = threading.Lock()

    def on_message(_client: object, _userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.retain:
            with lock:
                seen[message.topic] = message.payload

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.connect(address.host, address.port)
    client.loop_start()
    client.subscribe(topic_filter, qos=1)
    time.sleep(wait)
    client.loop_stop()
    client.disconnect()
    return seen


def test_retained_messages_reach_a_late_subscriber(mqtt_url: str) -> None:
    prefix = f"test/{uuid.uuid4().hex[:8]}"
    publisher = MqttPublisher(MqttAddress.parse(mqtt_url))
    publisher.start()
    try:
        publisher.publish(f"{prefix}/BA0123", {"gate": "A1", "version": 1})
        publisher.publish(f"{prefix}/BA0123", {"gate": "A7", "version": 2})
        publisher.publish(f"{prefix}/LH0001", {"gate": "B2", "version": 1})
    finally:
        publisher.stop()
    seen = retained(mqtt_url, f"{prefix}/#")
    assert json.loads(seen[f"{prefix}/BA0123"]) == {"gate": "A7", "version": 2}
    assert json.loads(seen[f"{prefix}/LH0001"])["gate"] == "B2"


@pytest.mark.parametrize("url", ["http://x", "mqtt://", "1883"])
def test_bad_mqtt_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValueError, match="MQTT URL"):
        MqttAddress.parse(url)


def test_unreachable_broker_is_reported() -> None:
    from support.servers import free_port

    publisher = MqttPublisher(MqttAddress("127.0.0.1", free_port()))
    with pytest.raises(ConnectionError, match="unreachable"):
        publisher.start(timeout=1)
    publisher.stop()


def test_email_is_delivered_to_a_real_smtp_server() -> None:
    with smtp_server() as mailbox:
        settings = SmtpSettings.parse(mailbox.url, sender="status@jetbridge.example")
        send_email(
            settings, to="passenger@example.com", subject="BA0123 gate A7", text="Now boarding"
        )
        deadline = time.time() + 5
        while not mailbox.messages and time.time() < deadline:
            time.sleep(0.02)
    (message,) = mailbox.messages
    assert message["To"] == "passenger@example.com"
    assert message["Subject"] == "BA0123 gate A7"
    assert "Now boarding" in message.get_payload()


@pytest.mark.parametrize("url", ["http://x", "smtp://", "mail.example.com"])
def test_bad_smtp_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValueError, match="SMTP URL"):
        SmtpSettings.parse(url)
