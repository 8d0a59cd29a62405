// A Go program whose goroutines talk over the sandbox's sockets through the
// runtime's network poller (epoll, edge-triggered): a TCP echo server with
// five concurrent clients, an HTTP server and client, a read deadline that
// expires, and a Unix socket pair. It prints only what any correct kernel
// makes it print, and exits with status 5.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

func echoServer(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func(c net.Conn) {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				c.Write([]byte(strings.ToUpper(line)))
			}
		}(c)
	}
}

func tcp() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	go echoServer(ln)
	var wg sync.WaitGroup
	results := make([]string, 5)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				results[i] = err.Error()
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "hello %d\n", i)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			results[i] = strings.TrimSpace(line)
		}(i)
	}
	wg.Wait()
	fmt.Println("echoes:", results)
	return ln
}

func httpRoundTrip() {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "path=%s", r.URL.Path)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		return
	}
	go srv.Serve(ln)
	resp, err := http.Get("http://" + ln.Addr().String() + "/x/y")
	if err != nil {
		fmt.Println("get:", err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println("http:", resp.StatusCode, string(body))
	srv.Close()
}

func deadline(ln net.Listener) {
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		fmt.Println("dial:", err)
		return
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = c.Read(make([]byte, 10))
	ne, ok := err.(net.Error)
	fmt.Println("deadline expired:", ok && ne.Timeout())
}

func unixPair() {
	dir, err := os.MkdirTemp("", "runtime-net-")
	if err != nil {
		fmt.Println("mkdirtemp:", err)
		return
	}
	defer os.RemoveAll(dir)
	path := dir + "/sock"
	ln, err := net.Listen("unix", path)
	if err != nil {
		fmt.Println("listen unix:", err)
		return
	}
	go echoServer(ln)
	c, err := net.Dial("unix", path)
	if err != nil {
		fmt.Println("dial unix:", err)
		return
	}
	fmt.Fprintf(c, "over unix\n")
	line, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Printf("unix: %q\n", line)
	c.Close()
	ln.Close()
}

func main() {
	ln := tcp()
	httpRoundTrip()
	deadline(ln)
	unixPair()
	os.Exit(5)
}
