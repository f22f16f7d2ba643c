#!/usr/bin/python3
"""python-ping: a tgrunner plugin in Python. It answers ".ping" with "pong"
in the same chat, like plugins/examples/ping in Go.

It shows everything a plugin in any language needs: the go-plugin handshake
(goplugin.py), Info and Configure, and the Session stream: events in, action
calls out and their results back, acks for every event. Needs Debian's
python3-grpcio, python3-protobuf and python3-cryptography (for AutoMTLS).
"""

import datetime
import itertools
import json
import os
import queue
import sys
import threading
from collections import deque

# No __pycache__ next to the plugin: its directory may be read-only, and
# the runner pins the files it runs.
sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "gen"))
sys.path.insert(0, HERE)

import grpc  # noqa: E402

import goplugin  # noqa: E402
from tgrunner.plugin.v1 import plugin_pb2 as pb  # noqa: E402
from tgrunner.plugin.v1 import plugin_pb2_grpc as pb_grpc  # noqa: E402

NAME = "python-ping"
VERSION = "0.1.0"
CONFIG_KEYS = {"reply"}


def log(level, message, **fields):
    """One hclog-style JSON line on stderr; the runner forwards it."""
    entry = {"@level": level, "@message": message, "@module": NAME,
             "@timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")}
    entry.update(fields)
    sys.stderr.write(json.dumps(entry) + "\n")
    sys.stderr.flush()


class Ping(pb_grpc.PluginServicer):
    def __init__(self):
        self.prefix = "."
        self.configured = False
        self.reply = "pong"
        self.lock = threading.Lock()
        self.session_open = False

    def Info(self, request, context):
        sub = pb.Subscription(events=[pb.EVENT_KIND_NEW_MESSAGE])
        if self.configured:
            # The command prefix is only known once configured.
            sub.text_prefixes.append(self.prefix + "ping")
        return pb.PluginInfo(
            name=NAME, version=VERSION, description="Answers .ping with pong (Python)",
            subscription=sub,
            permissions=pb.Permissions(actions=["send"]),
            commands=[pb.Command(name="ping", description="Replies pong")],
            sdk="python/" + VERSION,
        )

    def Configure(self, request, context):
        try:
            config = json.loads(request.config_json or b"{}")
        except ValueError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"config: invalid JSON: {e}")
        if not isinstance(config, dict):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "config: want an object")
        for key in sorted(config):
            if key not in CONFIG_KEYS:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"config: {key}: unknown key")
        reply = config.get("reply", "pong")
        if not isinstance(reply, str) or not reply.startswith("pong"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "config: reply: must be a string starting with pong")
        self.reply = reply
        self.prefix = request.command_prefix or "."
        self.configured = True
        return pb.ConfigureResponse()

    def Session(self, request_iterator, context):
        with self.lock:
            if self.session_open:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the plugin already has an open session")
            self.session_open = True
        try:
            yield from Session(self, request_iterator).run()
        finally:
            with self.lock:
                self.session_open = False


class Session:
    """One Session stream. A reader thread takes host messages; events are
    handled one at a time in a worker thread (so in order), which waits for
    the results of its action calls; everything outgoing goes through one
    queue that the gRPC response generator drains."""

    def __init__(self, plugin, requests):
        self.plugin = plugin
        self.requests = requests
        self.out = queue.Queue()
        self.events = queue.Queue()
        self.ids = itertools.count(1)
        self.pending = {}
        self.pending_lock = threading.Lock()
        self.seen = set()
        self.seen_order = deque()

    def run(self):
        threading.Thread(target=self.read, daemon=True).start()
        threading.Thread(target=self.work, daemon=True).start()
        while True:
            msg = self.out.get()
            if msg is None:
                return
            yield msg

    def read(self):
        stopping = False
        try:
            for msg in self.requests:
                kind = msg.WhichOneof("msg")
                if kind == "event" and not stopping:
                    self.events.put(msg.event)
                elif kind == "action_response":
                    with self.pending_lock:
                        slot = self.pending.pop(msg.action_response.id, None)
                    if slot is not None:
                        slot.put(msg.action_response.result)
                elif kind == "shutdown" and not stopping:
                    # Finish the events received, then end the stream; keep
                    # reading for the results of their action calls.
                    stopping = True
                    self.events.put(None)
        except grpc.RpcError:
            pass  # the runner went away
        if not stopping:
            self.events.put(None)

    def work(self):
        while True:
            ev = self.events.get()
            if ev is None:
                self.out.put(None)
                return
            key = (ev.account, ev.seq)
            if key in self.seen:
                self.ack(ev.seq)  # a redelivery of a handled event
                continue
            error = ""
            try:
                self.handle(ev)
            except Exception as e:  # one bad event must not stop the plugin
                error = f"{type(e).__name__}: {e}"
                log("error", "handling failed", seq=ev.seq, error=error)
            self.seen.add(key)
            self.seen_order.append(key)
            if len(self.seen_order) > 65536:
                self.seen.discard(self.seen_order.popleft())
            self.ack(ev.seq, error)

    def ack(self, seq, error=""):
        self.out.put(pb.PluginMessage(ack=pb.Ack(seqs=[seq], error=error)))

    def call(self, action, cause_seq):
        """Sends an action to the runner and waits for its result."""
        action_id = next(self.ids)
        slot = queue.Queue(maxsize=1)
        with self.pending_lock:
            self.pending[action_id] = slot
        self.out.put(pb.PluginMessage(action=pb.ActionRequest(id=action_id, action=action, cause_seq=cause_seq)))
        result = slot.get(timeout=60)
        if result.HasField("error"):
            e = result.error
            detail = f" (retry after {e.retry_after_seconds}s)" if e.retry_after_seconds else ""
            raise RuntimeError(f"{pb.ErrorCode.Name(e.code)}{detail}: {e.message}")
        return result

    def handle(self, ev):
        if ev.WhichOneof("payload") != "new_message":
            return
        msg = ev.new_message
        command = self.plugin.prefix + "ping"
        if msg.text != command and not msg.text.startswith(command + " "):
            return
        send = pb.SendMessage(chat=msg.chat.peer, text=self.plugin.reply, reply_to_message_id=msg.id)
        self.call(pb.Action(send=send), ev.seq)
        log("debug", "ponged", seq=ev.seq, chat=msg.chat.peer.id)


def main():
    goplugin.serve(lambda server: pb_grpc.add_PluginServicer_to_server(Ping(), server), plugin_name=NAME)


if __name__ == "__main__":
    main()
