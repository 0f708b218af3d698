import Foundation
import GEdgeCore
import GEdgePlacement
import Testing

@Suite("Inventory protocol (hcode 550)")
struct InventoryProtocolTests {
    func decode(_ fields: [String: JSONValue]) throws -> InventoryQuery { try InventoryQuery.decode(.object(fields)) }

    @Test func aQueryRoundTrips() throws {
        let q = InventoryQuery(kind: .events, namespace: "p1", objectKind: "Pod", objectName: "web-0", limit: 50, continueToken: "abc")
        #expect(try InventoryQuery.decode(.object(q.msg)) == q)
        #expect(try decode(["kind": "storageclasses"]).limit == 100)
    }

    @Test func kubectlNamesAreKinds() {
        #expect(InventoryKind.named("po") == .pods && InventoryKind.named("deploy") == .deployments && InventoryKind.named("PVC") == .persistentvolumeclaims)
        #expect(InventoryKind.named("sc") == .storageclasses && InventoryKind.named("pv") == .persistentvolumes && InventoryKind.named("secrets") == nil)
    }

    /// Every bad field is refused with its path, never crashes, never reaches a driver.
    @Test(arguments: [
        (["kind": "secrets"], "msg.kind"),
        (["kind": "pods", "namespace": "Bad_NS"], "msg.namespace"),
        (["kind": "storageclasses", "namespace": "p1"], "msg.namespace"),
        (["kind": "pods", "limit": 0], "msg.limit"),
        (["kind": "pods", "limit": 501], "msg.limit"),
        (["kind": "pods", "name": "../etc"], "msg.name"),
        (["kind": "pods", "object_kind": "Pod", "object_name": "x"], "msg.object_kind"),
        (["kind": "events", "object_kind": "Pod"], "msg.object_name"),
        (["kind": "events", "object_kind": "Pod/../", "object_name": "x"], "msg.object_name"),
        (["kind": "pods", "continue": .string(String(repeating: "a", count: 5000))], "msg.continue"),
        (["kind": "pods", "selector": "x"], "msg.selector"),
    ] as [([String: JSONValue], String)])
    func refusals(_ fields: [String: JSONValue], _ field: String) {
        do {
            _ = try decode(fields)
            Issue.record("accepted \(fields)")
        } catch {
            #expect((error as? MessageDecodingError)?.field == field, "\(error)")
        }
    }

    @Test func pagesCoverEveryItemOnceInOrder() {
        let items: [JSONValue] = (0..<23).map { i in .object(["namespace": .string(i % 2 == 0 ? "a" : "b"), "name": .string("pod-\(100 + i)")]) }
        var seen: [String] = []
        var token: String?
        var pages = 0
        repeat {
            let page = InventoryItem.page(items.shuffled(), limit: 5, after: token)
            #expect(page.items.count <= 5)
            seen += page.items.map { "\($0["namespace"]!.stringValue!)/\($0["name"]!.stringValue!)" }
            token = page.continueToken
            pages += 1
        } while token != nil && pages < 10
        #expect(pages == 5)
        #expect(seen == seen.sorted() && Set(seen).count == 23)
        #expect(InventoryItem.page(items, limit: 23, after: nil).continueToken == nil)
    }

    @Test func subdomainNames() {
        #expect(KubeNames.isDNSSubdomain("web-0.example") && KubeNames.isDNSSubdomain("pvc-1"))
        #expect(!KubeNames.isDNSSubdomain("") && !KubeNames.isDNSSubdomain("a..b") && !KubeNames.isDNSSubdomain("A") && !KubeNames.isDNSSubdomain(String(repeating: "a", count: 254)))
    }
}
