package queue

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plantroom/plantroom/internal/testenv"
	"github.com/plantroom/plantroom/protocol"
)

// The crash test runs the queue in a child process (this test binary,
// re-executed), kills it with SIGKILL in the middle of appending, forming
// and acknowledging batches, and checks after reopening that every reading
// the child saw committed is still there or was acknowledged.

const crashEnv = "PLANTROOM_QUEUE_CRASH_CHILD"

const crashPerItem = 10

func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path)
		return
	}
	os.Exit(m.Run())
}

// crashChild appends items 0, 1, 2, … of crashPerItem readings (value =
// reading number) and prints "committed N" once items 0…N are durable,
// "batch SEQ LO HI" for every batch formed (reading numbers LO…HI) and
// "ack SEQ" before acknowledging it. It runs until killed.
func crashChild(path string) {
	q, err := New(Config{Path: path, Gateway: testGateway, CommitInterval: 2 * time.Millisecond}, nil)
	if err == nil {
		err = q.Start(context.Background())
	}
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	out := make(chan string, 1024)
	go func() {
		w := bufio.NewWriter(os.Stdout)
		for line := range out {
			w.WriteString(line + "\n")
			if len(out) == 0 {
				w.Flush()
			}
		}
	}()
	go func() { // consumer: form batches, acknowledge every other one
		ctx := context.Background()
		for {
			bs, err := q.Next(ctx, Live, 200, 4)
			if err != nil {
				out <- "error " + err.Error()
				return
			}
			for _, b := range bs {
				var pb protocol.Batch
				if err := protocol.DecodeBatch(b.Payload, &pb); err != nil {
					out <- "error " + err.Error()
					return
				}
				out <- fmt.Sprintf("batch %d %d %d", b.Seq, int(pb.Readings[0].Value), int(pb.Readings[len(pb.Readings)-1].Value))
				if b.Seq%2 == 0 {
					out <- fmt.Sprintf("ack %d", b.Seq)
					q.Ack(b.Seq)
				}
			}
			if len(bs) == 0 {
				<-q.Notify()
			}
		}
	}()
	ctx := context.Background()
	for i := 0; ; i++ {
		c, err := q.Add(readings("meter-1", i*crashPerItem, crashPerItem))
		if err != nil {
			out <- "error " + err.Error()
			select {}
		}
		if i%8 == 7 {
			go func(i int) {
				if err := c.Wait(ctx); err == nil {
					out <- fmt.Sprintf("committed %d", i)
				}
			}(i)
			time.Sleep(time.Millisecond) // pace the producer like pollers do
		}
	}
}

func TestKill9LosesNothingCommitted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	cmd := testenv.SelfCommand("-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	committed := -1
	batches := map[uint64][2]int{}
	acked := map[uint64]bool{}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(60 * time.Second)
	killed := false
	for line := range lines {
		f := strings.Fields(line)
		switch f[0] {
		case "committed":
			n, _ := strconv.Atoi(f[1])
			committed = max(committed, n)
		case "batch":
			seq, _ := strconv.ParseUint(f[1], 10, 64)
			lo, _ := strconv.Atoi(f[2])
			hi, _ := strconv.Atoi(f[3])
			batches[seq] = [2]int{lo, hi}
		case "ack":
			seq, _ := strconv.ParseUint(f[1], 10, 64)
			acked[seq] = true
		case "error":
			t.Fatalf("child: %s", line)
		}
		if !killed && committed >= 3000 {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
		select {
		case <-deadline:
			if !killed {
				cmd.Process.Signal(syscall.SIGKILL)
				t.Fatalf("child committed only %d items in 60s", committed)
			}
		default:
		}
	}
	cmd.Wait()
	if committed < 3000 || len(batches) == 0 || len(acked) == 0 {
		t.Fatalf("child committed %d items, formed %d batches, acknowledged %d", committed, len(batches), len(acked))
	}

	q := openQueue(t, Config{Path: path})
	present := map[int]int{} // reading number → times seen
	var maxSeq uint64
	inflight, err := resendAll(q)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range inflight {
		if want, ok := batches[b.Seq]; ok {
			pb := decode(t, b)
			if lo, hi := int(pb.Readings[0].Value), int(pb.Readings[len(pb.Readings)-1].Value); lo != want[0] || hi > want[1] {
				t.Errorf("batch %d re-sent with readings %d–%d, was %d–%d", b.Seq, lo, hi, want[0], want[1])
			}
		}
		maxSeq = max(maxSeq, b.Seq)
		for _, v := range values(decode(t, b).Readings) {
			present[v]++
		}
	}
	ctx := context.Background()
	for {
		bs, err := q.Next(ctx, Backlog, protocol.MaxBatchReadings, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) == 0 {
			break
		}
		for _, b := range bs {
			if b.Seq <= maxSeq {
				t.Fatalf("new batch got seq %d, not above the in-flight %d", b.Seq, maxSeq)
			}
			for seq := range batches {
				if b.Seq <= seq {
					t.Fatalf("new batch got seq %d, but the child had already formed %d", b.Seq, seq)
				}
			}
			for _, v := range values(decode(t, b).Readings) {
				present[v]++
			}
		}
	}
	ackedReading := func(v int) bool {
		for seq := range acked {
			if r := batches[seq]; v >= r[0] && v <= r[1] {
				return true
			}
		}
		return false
	}
	lost := 0
	for v := 0; v < (committed+1)*crashPerItem; v++ {
		if present[v] == 0 && !ackedReading(v) {
			lost++
			if lost < 5 {
				t.Errorf("committed reading %d is gone and was never acknowledged", v)
			}
		}
	}
	for v, n := range present {
		if n > 1 {
			t.Fatalf("reading %d is in %d batches", v, n)
		}
	}
	if lost > 0 {
		t.Fatalf("%d committed readings lost", lost)
	}
	t.Logf("child committed %d items, formed %d batches (%d acknowledged); after restart %d readings remain",
		committed+1, len(batches), len(acked), len(present))
}
