package fasten_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	fasten "example.invalid/fasten/bindings/go"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func TestMQTTStampAndRead(t *testing.T) {
	ctx := fasten.WithRequestID(context.Background(), "req-m-1")
	out, err := fasten.MQTTStamp(ctx, []byte(`{"celsius":21.5}`))
	if err != nil || string(out) != `{"_req":"req-m-1","celsius":21.5}` {
		t.Fatalf("stamp: %s %v", out, err)
	}
	if out, _ := fasten.MQTTStamp(ctx, []byte{0x01, 0x02}); string(out) != "\x01\x02" {
		t.Fatalf("binary payload changed: %q", out)
	}
	if id, src := fasten.MQTTRequestID([]byte{0x01, 0x02}); id == "req-m-1" || src != fasten.MintedForMessage {
		t.Fatalf("binary payload: %q %d", id, src)
	}
	if id, src := fasten.MQTTRequestID([]byte(`{"_req":"req-m-1"}`)); id != "req-m-1" || src != fasten.FromPayload {
		t.Fatalf("_req: %q %d", id, src)
	}
	if id, src := fasten.MQTTRequestID([]byte("{\"_req\":\"bad id\\n\"}")); len(id) != 32 || src != fasten.MintedForMessage {
		t.Fatalf("hostile _req: %q %d", id, src)
	}
	if _, err := fasten.MQTTStamp(fasten.WithRequestID(context.Background(), "bad id"), []byte(`{}`)); err == nil {
		t.Fatal("a bad id was stamped")
	}
}

// Through the real Mosquitto: the subscriber's row joins the publisher's
// request and says method mqtt.
func TestMQTTThroughMosquitto(t *testing.T) {
	broker := os.Getenv("FASTEN_TEST_MQTT")
	if broker == "" {
		broker = "tcp://127.0.0.1:1883"
	}
	connect := func(name string) mqtt.Client {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).
			SetClientID(fmt.Sprintf("%s-%d", name, os.Getpid())).SetConnectTimeout(3 * time.Second))
		tok := c.Connect()
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("CI is set and Mosquitto is unreachable at %s: %v", broker, tok.Error())
			}
			t.Skipf("SKIPPED: Mosquitto unreachable at %s: %v", broker, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}
	f := newEngine(t, sqliteDSN(t, "mqtt.db"), "node-mqtt", nil)
	sub, pub := connect("fasten-go-sub"), connect("fasten-go-pub")
	topic := fmt.Sprintf("fasten/test/%d/setpoint", os.Getpid())
	rows := make(chan fasten.Row, 1)
	errs := make(chan error, 1)
	tok := sub.Subscribe(topic, 1, fasten.MQTTHandler(context.Background(),
		func(ctx context.Context, _ mqtt.Client, m mqtt.Message) {
			row, err := f.EmitDurable(ctx, fasten.Event{Code: "ORDER_PLACED", Target: m.Topic()})
			if err != nil {
				errs <- err
				return
			}
			rows <- row
		}))
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	ctx := fasten.WithRequestID(context.Background(), "req-mqtt-go-1")
	ptok, err := fasten.MQTTPublish(ctx, pub, topic, 1, false, []byte(`{"celsius":21.5}`))
	if err != nil || !ptok.WaitTimeout(5*time.Second) || ptok.Error() != nil {
		t.Fatalf("publish: %v %v", err, ptok.Error())
	}
	select {
	case row := <-rows:
		if row.RequestID != "req-mqtt-go-1" || row.Method != "mqtt" {
			t.Fatalf("row request_id %q method %q", row.RequestID, row.Method)
		}
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10 s")
	}
}
