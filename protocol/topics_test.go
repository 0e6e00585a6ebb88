package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestGatewayTopics(t *testing.T) {
	g := GatewayRef{Company: "acme", Project: "garden", Gateway: "gw-garden-1"}
	for _, c := range []struct{ got, want string }{
		{g.Prefix(), "plantroom/v2/acme/garden/gw-garden-1"},
		{g.Topic(KindTelemetry), "plantroom/v2/acme/garden/gw-garden-1/telemetry"},
		{g.Topic(KindStatus), "plantroom/v2/acme/garden/gw-garden-1/status"},
		{g.Topic(KindEvents), "plantroom/v2/acme/garden/gw-garden-1/events"},
		{g.DownlinkTopic("config"), "plantroom/v2/acme/garden/gw-garden-1/down/config"},
		{SubscriptionFilter(KindTelemetry), "plantroom/v2/+/+/+/telemetry"},
		{SubscriptionFilter(KindStatus), "plantroom/v2/+/+/+/status"},
		{g.DownlinkTopic(DownAck), "plantroom/v2/acme/garden/gw-garden-1/down/ack"},
		{g.DownlinkTopic(DownCmd), "plantroom/v2/acme/garden/gw-garden-1/down/cmd"},
		{g.DownlinkFilter(), "plantroom/v2/acme/garden/gw-garden-1/down/#"},
		{g.PrefixV1(), "plantroom/v1/acme/garden/gw-garden-1"},
		{SubscriptionFilterV1(KindTelemetry), "plantroom/v1/+/+/+/telemetry"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if err := g.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	bad := GatewayRef{Company: "acme", Project: "gar den", Gateway: "gw"}
	if err := bad.Validate(); !errors.Is(err, ErrID) || !strings.Contains(err.Error(), "project") {
		t.Errorf("Validate of a bad project id: %v", err)
	}
}

func TestParseTopic(t *testing.T) {
	g := GatewayRef{Company: "acme", Project: "tower", Gateway: "gw-tower-1"}
	for _, k := range []Kind{KindTelemetry, KindStatus, KindEvents} {
		ref, kind, err := ParseTopic(g.Topic(k))
		if err != nil || ref != g || kind != k {
			t.Errorf("ParseTopic(%q) = %+v, %q, %v", g.Topic(k), ref, kind, err)
		}
	}
	ref, kind, err := ParseTopic(g.DownlinkTopic("reboot"))
	if err != nil || ref != g || kind != KindDownlink {
		t.Errorf("ParseTopic(%q) = %+v, %q, %v", g.DownlinkTopic("reboot"), ref, kind, err)
	}
}

func TestParseAnyTopic(t *testing.T) {
	g := GatewayRef{Company: "acme", Project: "tower", Gateway: "gw-tower-1"}
	for _, c := range []struct{ topic, version string }{
		{g.Topic(KindTelemetry), TopicVersion},
		{g.PrefixV1() + "/telemetry", TopicVersionV1},
		{g.PrefixV1() + "/status", TopicVersionV1},
	} {
		ref, _, version, err := ParseAnyTopic(c.topic)
		if err != nil || ref != g || version != c.version {
			t.Errorf("ParseAnyTopic(%q) = %+v, %q, %v; want version %q", c.topic, ref, version, err, c.version)
		}
	}
	if _, _, _, err := ParseAnyTopic("plantroom/v3/acme/tower/gw-1/telemetry"); !errors.Is(err, ErrTopicVersion) {
		t.Errorf("ParseAnyTopic of v3: %v", err)
	}
}

func TestParseTopicRejects(t *testing.T) {
	long := strings.Repeat("x", MaxIDLen+1)
	cases := []struct {
		topic string
		want  error
		cause string
	}{
		{"", ErrTopic, "topic"},
		{"plantroom", ErrTopic, "topic"},
		{"plantroom/v2/acme/tower/gw-1", ErrTopic, "topic"},
		{"Plantroom/v1/acme/tower/gw-1/telemetry", ErrTopic, "topic"},
		{"/plantroom/v2/acme/tower/gw-1/telemetry", ErrTopic, "topic"},
		{"plantroom/v3/acme/tower/gw-1/telemetry", ErrTopicVersion, "topic_version"},
		{"plantroom/V2/acme/tower/gw-1/telemetry", ErrTopicVersion, "topic_version"},
		{"plantroom/v1/acme/tower/gw-1/telemetry", ErrTopicVersion, "topic_version"}, // only ParseAnyTopic takes v1
		{"plantroom/v2//tower/gw-1/telemetry", ErrTopic, "topic"},
		{"plantroom/v2/acme/+/gw-1/telemetry", ErrTopic, "topic"},
		{"plantroom/v2/acme/tower/#/telemetry", ErrTopic, "topic"},
		{"plantroom/v2/acme/tower/gw 1/telemetry", ErrTopic, "topic"},
		{"plantroom/v2/acme/tower/" + long + "/telemetry", ErrTopic, "topic"},
		{"plantroom/v2/acme/tower/gw-1/metrics", ErrTopic, "topic"},
		{"plantroom/v2/acme/tower/gw-1/Telemetry", ErrTopic, "topic"},
		{"plantroom/v2/acme/tower/gw-1/telemetry/", ErrTopic, "topic"},
		{"plantroom/v2/acme/tower/gw-1/telemetry/extra", ErrTopic, "topic"},
		{"plantroom/v2/acme/tower/gw-1/status/x", ErrTopic, "topic"},
		{"plantroom/v2/acme/tower/gw-1/down", ErrTopic, "topic"},
		{"plantroom/v2/acme/tower/gw-1/down/", ErrTopic, "topic"},
		{"plantroom/v2/acme/tower/gw-1/down/a/b", ErrTopic, "topic"},
	}
	for _, c := range cases {
		ref, kind, err := ParseTopic(c.topic)
		if !errors.Is(err, c.want) {
			t.Errorf("ParseTopic(%q) error = %v, want %v", c.topic, err, c.want)
			continue
		}
		if got := Cause(err); got != c.cause {
			t.Errorf("ParseTopic(%q): Cause = %q, want %q", c.topic, got, c.cause)
		}
		if ref != (GatewayRef{}) || kind != "" {
			t.Errorf("ParseTopic(%q) returned %+v, %q with its error", c.topic, ref, kind)
		}
		if !strings.Contains(err.Error(), "\"") {
			t.Errorf("ParseTopic(%q) error %q does not quote the topic", c.topic, err)
		}
	}
	// A bad id is both a malformed topic and an invalid id.
	_, _, err := ParseTopic("plantroom/v2/acme/tower/gw 1/telemetry")
	if !errors.Is(err, ErrID) {
		t.Errorf("ParseTopic with a bad gateway id: %v does not wrap ErrID", err)
	}
}
