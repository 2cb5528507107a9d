"""Audits user events: one AUDIT_RECORDED on audit-events per registration
or profile update, keyed by the user. A handler for the host's WIT world
`event-host:handler/handler@0.2.0`, built with componentize-py (build.sh)."""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, publisher
from wit_world.imports.types import (
    Delivery,
    Description,
    Format,
    Header,
    HandlerError_Fatal,
    Message,
    Message_Event,
    OutgoingEvent,
    Subscription,
)


class WitWorld(wit_world.WitWorld):
    def describe(self) -> Description:
        return Description(
            subscriptions=[Subscription("user-events", Format.ENVELOPE)],
            event_types=["USER_REGISTERED", "USER_PROFILE_UPDATED"],
            retry=None,
            stateless=True,
        )

    def handle(self, message: Message, delivery: Delivery) -> None:
        # An envelope subscription only ever delivers events.
        assert isinstance(message, Message_Event)
        event = message.value
        try:
            data = json.loads(event.data)
        except ValueError as e:
            raise Err(HandlerError_Fatal(f"data is not JSON: {e}"))
        if not isinstance(data, dict):
            raise Err(HandlerError_Fatal("data is not a JSON object"))
        user_id = event.user_id or data.get("userId") or data.get("id")
        if not isinstance(user_id, str):
            raise Err(HandlerError_Fatal(f"{event.event_type} {event.id} names no user"))

        record = {"eventId": event.id, "eventType": event.event_type, "userId": user_id}
        audit = OutgoingEvent(
            topic="audit-events",
            event_type="AUDIT_RECORDED",
            user_id=user_id,
            data=json.dumps(record),
            key=None,
            headers=[Header("audit.source", b"python")],
        )
        try:
            publisher.publish(audit)
        except Err as e:  # the host refused the event: retrying cannot help
            raise Err(HandlerError_Fatal(f"publish: {e.value}"))
        host.log(host.Level.INFO, f"audited {event.event_type} {event.id} of user {user_id}")
