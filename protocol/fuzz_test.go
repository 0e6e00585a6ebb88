package protocol

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecodeBatch checks that DecodeBatch never panics, that every error it
// returns names a cause, and that whatever it accepts is canonical:
// AppendBatch re-encodes it to the very same bytes, which decode to the same
// value. Each input is also tried with its checksum recomputed, so mutations
// reach the parser behind the CRC.
//
//	go test -run '^$' -fuzz FuzzDecodeBatch -fuzztime 60s ./protocol/
func FuzzDecodeBatch(f *testing.F) {
	for _, g := range loadGoldenBatches(f) {
		f.Add(g.data)
		f.Add(g.data[:len(g.data)/2])
		f.Add(append(bytes.Clone(g.data[:len(g.data)-4]), 0, 0, 0, 0))
	}
	f.Add(validRaw().bytes())
	r := validRaw()
	r.readings[1].value = 0x7ff8000000000000
	f.Add(r.bytes())
	r = validRaw()
	r.seqBytes = []byte{0x80, 0x80, 0x00}
	f.Add(r.bytes())
	r = validRaw()
	r.count = u64(2)
	f.Add(r.bytes())
	f.Add([]byte{1, 0, 0, 0, 0, 0})

	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodeBatch(t, data)
		if len(data) >= 6 {
			checkDecodeBatch(t, withCRC(data[:len(data)-4]))
		}
	})
}

func checkDecodeBatch(t *testing.T, data []byte) {
	var b Batch
	err := DecodeBatch(data, &b)
	if err != nil {
		if Cause(err) == "other" {
			t.Fatalf("DecodeBatch error %q wraps no sentinel", err)
		}
		return
	}
	enc, err := AppendBatch(nil, &b)
	if err != nil {
		t.Fatalf("DecodeBatch accepted %x, but AppendBatch rejects the result: %v", data, err)
	}
	if !bytes.Equal(enc, data) {
		t.Fatalf("DecodeBatch accepted a non-canonical payload:\n got %x\nre-encoded %x", data, enc)
	}
	var again Batch
	if err := DecodeBatch(enc, &again); err != nil {
		t.Fatalf("re-encoded payload does not decode: %v", err)
	}
	if diff := sameBatch(&again, &b); diff != "" {
		t.Fatalf("re-encoded payload decodes differently: %s", diff)
	}
}

// FuzzDecodeEvent checks that DecodeEvent never panics, that its errors name
// a cause, and that an accepted event survives EncodeEvent.
func FuzzDecodeEvent(f *testing.F) {
	for _, g := range goldenMessages {
		f.Add(readMessageFixture(f, g.file))
	}
	f.Add([]byte(`{"v":1,"gateway":"gw-1","seq":1,"kind":"x","ts":946684800000,"attrs":{"a":1e308}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEvent(data)
		if err != nil {
			if Cause(err) == "other" {
				t.Fatalf("DecodeEvent error %q wraps no sentinel", err)
			}
			return
		}
		enc := EncodeEvent(e)
		if len(enc) > MaxMessageBytes {
			return // escaping can lengthen a message that was just under the limit
		}
		again, err := DecodeEvent(enc)
		if err != nil {
			t.Fatalf("EncodeEvent(%+v) = %s does not decode: %v", e, enc, err)
		}
		if len(e.Attrs) == 0 {
			e.Attrs = nil // "attrs":{} is omitted on encoding
		}
		if !reflect.DeepEqual(again, e) {
			t.Fatalf("event %+v comes back as %+v", e, again)
		}
	})
}

// FuzzParseTopic checks that ParseTopic never panics, that its errors name a
// cause, and that an accepted topic is the one GatewayRef builds.
func FuzzParseTopic(f *testing.F) {
	g := GatewayRef{Company: "acme", Project: "garden", Gateway: "gw-garden-1"}
	for _, k := range []Kind{KindTelemetry, KindStatus, KindEvents} {
		f.Add(g.Topic(k))
	}
	f.Add(g.DownlinkTopic("config"))
	f.Add("plantroom/v2/a/b/c/telemetry")
	f.Add("plantroom/v1/+/+/+/telemetry")
	f.Fuzz(func(t *testing.T, topic string) {
		ref, kind, err := ParseTopic(topic)
		if err != nil {
			if Cause(err) == "other" {
				t.Fatalf("ParseTopic error %q wraps no sentinel", err)
			}
			return
		}
		if err := ref.Validate(); err != nil {
			t.Fatalf("ParseTopic(%q) accepted invalid ids: %v", topic, err)
		}
		built := ref.Topic(kind)
		if kind == KindDownlink {
			built = ref.DownlinkTopic(topic[len(ref.Prefix())+len("/down/"):])
		}
		if built != topic {
			t.Fatalf("ParseTopic(%q) = %+v, %q, which builds %q", topic, ref, kind, built)
		}
	})
}
