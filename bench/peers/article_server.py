# The tutorial's server (reference/000_199f8090b862c4bc.txt), as written
# there: bind, listen(5), and one client at a time. Only the port is
# configurable (first argument, default 8888), so that bench/compare can
# run it beside the other peers.
#
# Try it:  python3 bench/peers/article_server.py 8888
#          echo hi | nc -q1 127.0.0.1 8888
import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 8888

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(('127.0.0.1', port))
s.listen(5)

while True:
    conn, addr = s.accept()
    # 记录与客户端建立连接的信息
    print("客户端{}已连接".format(addr))
    # 接收客户端发送的数据
    data = conn.recv(1024)
    # 发送数据到客户端
    conn.sendall(b"Hello, client!")
    # 断开与客户端的连接
    conn.close()
