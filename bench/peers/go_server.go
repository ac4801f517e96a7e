// A Go server, goroutine per connection, as a Go developer would write it.
// Standard library only: built with `GO111MODULE=off go build`.
//
// Usage: go_server PORT [greet|banner|echo|discard]
// Try it: go_server 9000 & echo hi | nc -q1 127.0.0.1 9000
package main

import (
	"fmt"
	"net"
	"os"
)

var greeting = []byte("Hello, client!")

func serve(conn net.Conn, mode string) {
	defer conn.Close()
	buf := make([]byte, 16384)
	switch mode {
	case "greet":
		conn.Read(buf[:1024])
		conn.Write(greeting)
	case "banner":
		conn.Write(greeting)
	case "echo":
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			if _, err := conn.Write(buf[:n]); err != nil {
				return
			}
		}
	case "discard":
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintf(os.Stderr, "usage: %s PORT [greet|banner|echo|discard]\n", os.Args[0])
		os.Exit(2)
	}
	mode := "greet"
	if len(os.Args) > 2 {
		mode = os.Args[2]
	}
	listener, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		conn, err := listener.Accept()
		if err != nil {
			continue
		}
		go serve(conn, mode)
	}
}
