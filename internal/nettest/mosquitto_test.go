package nettest

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// mqttConnect sends an MQTT 3.1.1 CONNECT and returns the CONNACK.
func mqttConnect(t *testing.T, addr string) ([]byte, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	connect := []byte{
		0x10, 16, // CONNECT, remaining length
		0, 4, 'M', 'Q', 'T', 'T', 4, // protocol name and level 4
		0x02,  // clean session
		0, 30, // keepalive
		0, 4, 't', 'e', 's', 't', // client id
	}
	if _, err := c.Write(connect); err != nil {
		return nil, err
	}
	ack := make([]byte, 4)
	_, err = io.ReadFull(c, ack)
	return ack, err
}

func TestMosquittoAcceptsMQTTAndRestarts(t *testing.T) {
	m := StartMosquitto(t, MosquittoOptions{Config: "max_queued_messages 0\n"})
	want := []byte{0x20, 2, 0, 0} // CONNACK, accepted
	if ack, err := mqttConnect(t, m.Addr()); err != nil || !bytes.Equal(ack, want) {
		t.Fatalf("CONNACK % x, %v; want % x", ack, err, want)
	}
	m.Stop()
	m.Stop()
	if _, err := mqttConnect(t, m.Addr()); err == nil {
		t.Fatal("a stopped mosquitto still answered")
	}
	m.Start()
	if ack, err := mqttConnect(t, m.Addr()); err != nil || !bytes.Equal(ack, want) {
		t.Fatalf("after Start: CONNACK % x, %v; want % x", ack, err, want)
	}
}

func TestMosquittoOnAGivenPort(t *testing.T) {
	port := FreePort(t)
	m := StartMosquitto(t, MosquittoOptions{Port: port})
	if _, p, _ := net.SplitHostPort(m.Addr()); p != strconv.Itoa(port) {
		t.Fatalf("address %s, want port %d", m.Addr(), port)
	}
	if m.URL() != "tcp://"+m.Addr() {
		t.Fatalf("URL %s", m.URL())
	}
}
