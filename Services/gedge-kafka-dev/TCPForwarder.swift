import Foundation
import GEdgeCore
import Logging

/// Forwards TCP connections from a fixed loopback port to a target port, so that clients
/// can bootstrap from a known address while the mock brokers listen on ports of their own.
/// One thread, poll(2) over every socket.
final class TCPForwarder: @unchecked Sendable {
    private let listenFD: Int32
    private let targetPort: UInt16
    private let thread: DedicatedThread
    private let running = RunFlag(true)
    let port: UInt16

    init(host: String, port: UInt16, targetPort: UInt16, logger: Logger) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ConfigurationError(key: "kafka.dev.port", reason: "socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &addr.sin_addr)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 128) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw ConfigurationError(key: "kafka.dev.port", reason: "cannot listen on \(host):\(port): \(reason)")
        }
        var actual = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        self.port = UInt16(bigEndian: actual.sin_port)
        self.listenFD = fd
        self.targetPort = targetPort
        self.thread = DedicatedThread(name: "kafka-dev-forwarder")
        thread.submit { [self] in self.loop(logger: logger) }
    }

    func stop() {
        running.set(false)
        thread.stop()
        close(listenFD)
    }

    private func connectTarget() -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = targetPort.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if ok != 0 {
            close(fd)
            return nil
        }
        return fd
    }

    private func loop(logger: Logger) {
        var peer: [Int32: Int32] = [:]
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        func drop(_ fd: Int32) {
            if let other = peer.removeValue(forKey: fd) {
                peer.removeValue(forKey: other)
                close(other)
            }
            close(fd)
        }
        while running.isSet {
            var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)]
            fds += peer.keys.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let n = poll(&fds, nfds_t(fds.count), 200)
            if n <= 0 { continue }
            for p in fds where p.revents != 0 {
                if p.fd == listenFD {
                    let client = accept(listenFD, nil, nil)
                    guard client >= 0 else { continue }
                    guard let target = connectTarget() else {
                        logger.warning("bootstrap target unreachable; closing client")
                        close(client)
                        continue
                    }
                    peer[client] = target
                    peer[target] = client
                    continue
                }
                guard let other = peer[p.fd] else { continue }
                let r = read(p.fd, &buffer, buffer.count)
                if r <= 0 {
                    drop(p.fd)
                    continue
                }
                var off = 0
                while off < r {
                    let w = buffer.withUnsafeBytes { write(other, $0.baseAddress! + off, r - off) }
                    if w <= 0 { break }
                    off += w
                }
                if off < r { drop(p.fd) }
            }
        }
        for fd in peer.keys { close(fd) }
    }
}
