package fasten

/*
#include <stdlib.h>
#include "fasten.h"
*/
import "C"

import (
	"context"
	"unsafe"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Where an inbound MQTT message's id came from.
const (
	FromUserProperty = 0 // the MQTT v5 user property request-id
	FromPayload      = 1 // the JSON payload's _req key
	MintedForMessage = 2 // neither was usable: a fresh id
)

func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// MQTTStamp returns payload carrying ctx's request id (a fresh one when ctx
// has none) by the engine's rules: a JSON object payload gets the reserved
// key _req (replacing any); any other payload comes back unchanged.
func MQTTStamp(ctx context.Context, payload []byte) ([]byte, error) {
	s, buf := cstr(RequestID(ctx))
	defer buf.free()
	var out *C.char
	var n C.size_t
	err := call(func() C.int32_t {
		return C.fasten_mqtt_stamp(s, bytesPtr(payload), C.size_t(len(payload)), &out, &n)
	})
	if err != nil {
		return nil, err
	}
	return []byte(take(out, n)), nil
}

// MQTTPublish publishes payload on topic with paho, stamped by MQTTStamp,
// so every subscriber's rows join ctx's request.
func MQTTPublish(ctx context.Context, c mqtt.Client, topic string, qos byte, retained bool, payload []byte) (mqtt.Token, error) {
	stamped, err := MQTTStamp(ctx, payload)
	if err != nil {
		return nil, err
	}
	return c.Publish(topic, qos, retained, stamped), nil
}

// MQTTRequestID is an inbound payload's request id by the engine's rules
// (its _req key when it passes the check, else a fresh id) and where it
// came from. paho speaks MQTT 3.1.1, so there is no user property here.
func MQTTRequestID(payload []byte) (string, int) {
	var id [C.FASTEN_REQUEST_ID_SIZE]C.char
	var n C.size_t
	var source C.int32_t
	none := C.fasten_str{}
	err := call(func() C.int32_t {
		return C.fasten_mqtt_request_id(none, bytesPtr(payload), C.size_t(len(payload)), &id[0], &n, &source)
	})
	if err != nil {
		panic(err) // only a broken ABI contract fails here
	}
	return C.GoStringN(&id[0], C.int(n)), int(source)
}

// MQTTHandler adapts a handler that takes a context to paho's
// MessageHandler: each message runs with the sender's request id in ctx (a
// fresh one when it carries none or a bad one: nothing is dropped), and
// rows emitted inside say method mqtt.
func MQTTHandler(ctx context.Context, h func(ctx context.Context, c mqtt.Client, m mqtt.Message)) mqtt.MessageHandler {
	return func(c mqtt.Client, m mqtt.Message) {
		id, _ := MQTTRequestID(m.Payload())
		mctx := derive(WithRequestID(ctx, id), func(s *scope) { s.method = "mqtt" })
		h(mctx, c, m)
	}
}
