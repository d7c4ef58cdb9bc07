package faultnet

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// chunkSize is the most a pipe reads at once; it is also the granularity of blackholes and
// delays, which apply per chunk.
const chunkSize = 32 << 10

// queueLen bounds the chunks held back by a delay, so that a delayed link pushes back on a
// fast writer through TCP flow control instead of buffering without limit.
const queueLen = 64

// link is one proxied connection: the dialer's side and the target's side.
type link struct {
	src    string
	client net.Conn
	server net.Conn
	// done is closed when the link is torn down; a pipe waiting on a delay or on its queue
	// watches it so that it never outlives the link.
	done chan struct{}
	once sync.Once
}

// chunk is a piece of the byte stream waiting to be written at or after at; eof stands for
// the reader's end of stream, so that the FIN travels with the same delay as the data.
type chunk struct {
	data []byte
	eof  bool
	at   time.Time
}

func newLink(src string, client, server net.Conn) *link {
	return &link{src: src, client: client, server: server, done: make(chan struct{})}
}

// close tears both sides down. With hard set the peers see a reset rather than an orderly
// end of stream, because a cut link is a failure, not a shutdown.
func (l *link) close(hard bool) {
	l.once.Do(func() {
		close(l.done)
		if hard {
			reset(l.client)
			reset(l.server)
			return
		}
		_ = l.client.Close() // the link is finished; a close error has nobody to tell
		_ = l.server.Close()
	})
}

// reset closes c with an RST and no TIME_WAIT, as a dead link would look to its peer.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // best effort: a plain close is the fallback
	}
	_ = c.Close() // nothing useful to do with the error of a deliberate reset
}

// pipe copies one direction of l. A reader goroutine stamps each chunk with its delivery
// time and this goroutine writes it when due, so a delay adds latency without adding the
// delay once per chunk.
func (p *Proxy) pipe(l *link, dir Direction) {
	from, to := l.client, l.server
	if dir == FromTarget {
		from, to = l.server, l.client
	}
	queue := make(chan chunk, queueLen)
	var wg sync.WaitGroup
	wg.Go(func() { p.read(l, dir, from, queue) })
	defer wg.Wait()
	for c := range queue {
		if !wait(l, c.at) {
			return
		}
		if c.eof {
			// Half-close rather than close: the other direction may still be talking.
			if cw, ok := to.(interface{ CloseWrite() error }); ok {
				if cw.CloseWrite() != nil {
					l.close(true)
				}
			}
			continue
		}
		n, err := to.Write(c.data)
		p.forwarded.Add(int64(n))
		if err != nil {
			l.close(true)
			return
		}
	}
}

// read fills queue from one side until end of stream or error.
func (p *Proxy) read(l *link, dir Direction, from net.Conn, queue chan<- chunk) {
	defer close(queue)
	buf := make([]byte, chunkSize)
	for {
		n, err := from.Read(buf)
		if n > 0 && !p.enqueue(l, dir, queue, chunk{data: append([]byte(nil), buf[:n]...)}) {
			return
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			p.enqueue(l, dir, queue, chunk{eof: true})
			return
		default:
			// Anything but an orderly end (a reset, or our own close) kills both directions,
			// as it would kill the connection the proxy stands in for.
			l.close(true)
			return
		}
	}
}

// enqueue applies the rule in force for l's source to c and queues it, or drops it. Rules
// are read per chunk so that a Blackhole or Delay set on a live connection takes effect at
// the next chunk. It returns false when the link was torn down while waiting for room.
func (p *Proxy) enqueue(l *link, dir Direction, queue chan<- chunk, c chunk) bool {
	r := p.rule(l.src)
	if r.drop&dir != 0 {
		// A blackhole eats the FIN too: the peer must not learn that the other side left.
		p.dropped.Add(int64(len(c.data)))
		return true
	}
	c.at = time.Now().Add(r.delay)
	select {
	case queue <- c:
		return true
	case <-l.done:
		return false
	}
}

// wait sleeps until at, or returns false early if the link is torn down meanwhile.
func wait(l *link, at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		select {
		case <-l.done:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.done:
		return false
	}
}
