"""MQTT and SMTP adapters against real servers."""

from __future__ import annotations

import json
import select
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import paho.mqtt.client as mqtt
import pytest

from jetbridge.notify.email import Mailer, SmtpSettings, send_email
from jetbridge.notify.mqtt import MqttAddress, MqttPublisher
from support.servers import free_port, smtp_server


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


def test_the_mailer_sends_a_burst_over_one_kept_connection() -> None:
    with smtp_server() as mailbox:
        mailer = Mailer(SmtpSettings.parse(mailbox.url), connections=4)
        try:
            for n in range(20):
                mailer.send(to=f"pax{n}@example.com", subject=f"notice {n}", text="Cancelled")
        finally:
            mailer.close()
    assert [m["To"] for m in mailbox.messages] == [f"pax{n}@example.com" for n in range(20)]
    assert len(set(mailbox.peers)) == 1  # one connection carried all twenty


def test_the_mailer_keeps_to_its_connections_under_many_threads() -> None:
    with smtp_server() as mailbox:
        mailer = Mailer(SmtpSettings.parse(mailbox.url), connections=3)
        addresses = [f"pax{n}@example.com" for n in range(90)]
        try:
            with ThreadPoolExecutor(max_workers=9) as pool:
                sends = [
                    pool.submit(mailer.send, to=address, subject="Cancelled", text="Sorry")
                    for address in addresses
                ]
                for send in sends:
                    send.result(timeout=60)
        finally:
            mailer.close()
    received = sorted(str(m["To"]) for m in mailbox.messages)
    assert received == sorted(addresses)  # each exactly once
    assert 1 <= len(set(mailbox.peers)) <= 3


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    with smtp_server(idle_timeout=0.5) as mailbox:
        mailer = Mailer(SmtpSettings.parse(mailbox.url), connections=1)
        try:
            mailer.send(to="first@example.com", subject="one", text="1")
            ((kept, _),) = mailer._idle
            # The server answers 421 and hangs up once the connection has been idle a while.
            deadline = time.time() + 30
            while not select.select([kept.sock], [], [], 0.05)[0]:
                assert time.time() < deadline, "the server never closed the idle connection"
            mailer.send(to="second@example.com", subject="two", text="2")
        finally:
            mailer.close()
    assert [m["To"] for m in mailbox.messages] == ["first@example.com", "second@example.com"]
    assert len(set(mailbox.peers)) == 2


def test_the_mailer_reports_an_unreachable_server_and_keeps_nothing_open() -> None:
    mailer = Mailer(SmtpSettings("127.0.0.1", free_port()), connections=2, timeout=5)
    with pytest.raises(OSError):
        mailer.send(to="pax@example.com", subject="x", text="y")
    assert mailer._idle == []
    with smtp_server() as mailbox:  # its slot was given back: a later send goes through
        mailer.settings = SmtpSettings.parse(mailbox.url)
        mailer.send(to="pax@example.com", subject="x", text="y")
        mailer.send(to="pax@example.com", subject="x", text="y")
        mailer.send(to="pax@example.com", subject="x", text="y")
        mailer.close()
    assert len(mailbox.messages) == 3


def test_a_mailer_needs_a_connection() -> None:
    with pytest.raises(ValueError, match="connections"):
        Mailer(SmtpSettings("127.0.0.1", 25), connections=0)
