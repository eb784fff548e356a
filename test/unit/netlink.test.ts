import { expect, test } from "bun:test";
import {
  attrMap,
  attrString,
  attrU32,
  decodeAck,
  decodeIfAddr,
  decodeIfInfo,
  decodeRtMsg,
  encodeAttrs,
  encodeIfAddr,
  encodeIfInfo,
  encodeMessage,
  encodeRtMsg,
  IFLA,
  IFLA_INFO,
  ipText,
  ipv4Bytes,
  messageAttrs,
  nestAttr,
  NLA_F_NESTED,
  NLM_F,
  NLMSG,
  parseAttrs,
  parseMessages,
  RTM,
  strAttr,
  u32Attr,
  IFINFO_SIZE,
} from "../../src/net/netlink.ts";
import { gatewayOf, intToIp, ipToInt, nextFree, overlaps, parseCidr } from "../../src/net/ipam.ts";
import { checkPorts, parseNetMode, parsePort, portsClash } from "../../src/net/ports.ts";
import { baseScript, publishScript, withdrawScript } from "../../src/net/nft.ts";
import { containerResolvConf, hostsText } from "../../src/net/hosts.ts";
import { hostVethName } from "../../src/net/bridge.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("encodeMessage() writes the header, the padded family header and the attributes", () => {
  const bytes = encodeMessage({ type: RTM.NEWLINK, flags: NLM_F.REQUEST | NLM_F.ACK, seq: 7, body: encodeIfInfo({ index: 3 }), attrs: [strAttr(IFLA.IFNAME, "br0")] });
  // 16 header + 16 ifinfomsg + attr (4 + "br0\0" = 8)
  expect(bytes.length).toBe(40);
  const view = new DataView(bytes.buffer);
  expect(view.getUint32(0, true)).toBe(40);
  expect(view.getUint16(4, true)).toBe(16);
  expect(view.getUint16(6, true)).toBe(5);
  expect(view.getUint32(8, true)).toBe(7);
  expect(view.getInt32(16 + 4, true)).toBe(3);
  expect(hex(bytes.subarray(32))).toBe("0800030062723000");
});

test("attribute lengths exclude the padding, which is zero", () => {
  const bytes = encodeAttrs([strAttr(IFLA.IFNAME, "veth0"), u32Attr(IFLA.MTU, 1500)]);
  // "veth0\0" is 6 bytes: length 10, padded to 12; then 8 for the u32
  expect(bytes.length).toBe(20);
  expect(new DataView(bytes.buffer).getUint16(0, true)).toBe(10);
  expect([...bytes.subarray(10, 12)]).toEqual([0, 0]);
  const attrs = parseAttrs(bytes);
  expect(attrs.map((a) => a.type)).toEqual([IFLA.IFNAME, IFLA.MTU]);
  expect(attrString(attrs[0]!.value)).toBe("veth0");
  expect(attrU32(attrs[1]!.value)).toBe(1500);
});

test("nested attributes are flagged NLA_F_NESTED and decode back", () => {
  const bytes = encodeAttrs([nestAttr(IFLA.LINKINFO, [strAttr(IFLA_INFO.KIND, "bridge")])]);
  const view = new DataView(bytes.buffer);
  expect(view.getUint16(2, true)).toBe(IFLA.LINKINFO | NLA_F_NESTED);
  // a nest counts its children with their padding, as nla_nest_end() does
  expect(view.getUint16(0, true)).toBe(4 + 12);
  const [outer] = parseAttrs(bytes);
  expect(outer!.type).toBe(IFLA.LINKINFO);
  expect(outer!.nested).toBe(true);
  expect(attrString(attrMap(outer!.value).get(IFLA_INFO.KIND))).toBe("bridge");
});

test("parseAttrs() stops at a truncated attribute", () => {
  const bytes = encodeAttrs([u32Attr(1, 5), u32Attr(2, 6)]);
  expect(parseAttrs(bytes.subarray(0, 12)).map((a) => a.type)).toEqual([1]);
});

test("parseMessages() splits a datagram and rejects a truncated message", () => {
  const a = encodeMessage({ type: RTM.NEWLINK, flags: NLM_F.MULTI, seq: 1, body: encodeIfInfo({ index: 1 }), attrs: [strAttr(IFLA.IFNAME, "lo")] });
  const done = encodeMessage({ type: NLMSG.DONE, flags: NLM_F.MULTI, seq: 1, body: new Uint8Array(4) });
  const both = new Uint8Array(a.length + done.length);
  both.set(a);
  both.set(done, a.length);
  const messages = parseMessages(both);
  expect(messages.map((m) => m.type)).toEqual([RTM.NEWLINK, NLMSG.DONE]);
  expect(decodeIfInfo(messages[0]!.payload).index).toBe(1);
  expect(attrString(messageAttrs(messages[0]!, IFINFO_SIZE).get(IFLA.IFNAME))).toBe("lo");
  expect(() => parseMessages(both.subarray(0, a.length - 4))).toThrow(/truncated/);
});

/** An NLMSG_ERROR as the kernel sends it to a socket with NETLINK_CAP_ACK and NETLINK_EXT_ACK. */
function errorMessage(errno: number, seq: number, tlvs: Uint8Array, capped = true): Uint8Array {
  const request = encodeMessage({ type: RTM.NEWLINK, flags: 5, seq, body: encodeIfInfo() });
  const body = new Uint8Array(4 + (capped ? 16 : request.length) + tlvs.length);
  new DataView(body.buffer).setInt32(0, -errno, true);
  body.set(request.subarray(0, capped ? 16 : request.length), 4);
  body.set(tlvs, 4 + (capped ? 16 : request.length));
  const flags = (capped ? NLM_F.CAPPED : 0) | (tlvs.length ? NLM_F.ACK_TLVS : 0);
  return encodeMessage({ type: NLMSG.ERROR, flags, seq, body });
}

test("decodeAck() reads the errno and the kernel's extended-ack text", () => {
  const tlvs = encodeAttrs([strAttr(1, "ipv4: Address already assigned"), u32Attr(2, 36)]);
  const [m] = parseMessages(errorMessage(17, 42, tlvs));
  const ack = decodeAck(m!);
  expect(ack).toEqual({ errno: 17, seq: 42, message: "ipv4: Address already assigned", offset: 36 });
});

test("decodeAck() skips an echoed request when the error is not capped", () => {
  const tlvs = encodeAttrs([strAttr(1, "boom")]);
  const [m] = parseMessages(errorMessage(22, 3, tlvs, false));
  expect(decodeAck(m!).message).toBe("boom");
});

test("decodeAck() of a plain acknowledgement is errno 0 and no text", () => {
  const [m] = parseMessages(errorMessage(0, 9, new Uint8Array(0)));
  expect(decodeAck(m!)).toEqual({ errno: 0, seq: 9 });
});

test("ifaddrmsg and rtmsg round-trip", () => {
  const addr = { family: 2, prefixlen: 16, flags: 0, scope: 0, index: 12 };
  expect(decodeIfAddr(encodeIfAddr(addr))).toEqual(addr);
  const rt = decodeRtMsg(encodeRtMsg({ family: 2, dstLen: 24, table: 254, protocol: 3, scope: 253, type: 1 }));
  expect(rt).toEqual({ family: 2, dstLen: 24, srcLen: 0, tos: 0, table: 254, protocol: 3, scope: 253, type: 1, flags: 0 });
});

test("ipv4Bytes() and ipText() convert addresses; bad text throws", () => {
  expect([...ipv4Bytes("10.88.0.1")]).toEqual([10, 88, 0, 1]);
  expect(ipText(new Uint8Array([192, 0, 2, 1]))).toBe("192.0.2.1");
  expect(ipText(new Uint8Array([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]))).toBe("fd00::2");
  expect(() => ipv4Bytes("10.0.0.256")).toThrow();
  expect(() => ipv4Bytes("10.0.0")).toThrow();
});

// ---------------------------------------------------------------------------
// Address management, ports, rules, files: the pure parts around the codec.

test("parseCidr(), overlaps() and gatewayOf() do IPv4 subnet arithmetic", () => {
  expect(parseCidr("10.88.3.4/16")).toEqual({ base: ipToInt("10.88.0.0"), len: 16 });
  expect(intToIp(ipToInt("172.18.255.254"))).toBe("172.18.255.254");
  expect(overlaps("10.88.0.0/16", "10.88.7.0/24")).toBe(true);
  expect(overlaps("10.88.0.0/16", "10.89.0.0/16")).toBe(false);
  expect(overlaps("0.0.0.0/0", "10.0.0.0/8")).toBe(true);
  expect(gatewayOf("10.88.0.0/16")).toBe("10.88.0.1");
});

test("nextFree() goes on after the cursor, skips taken addresses and wraps", () => {
  const taken = new Set(["10.0.0.1", "10.0.0.3"]);
  expect(nextFree("10.0.0.0/29", taken, 0)).toEqual({ ip: "10.0.0.2", cursor: 2 });
  expect(nextFree("10.0.0.0/29", taken, 2)).toEqual({ ip: "10.0.0.4", cursor: 4 });
  expect(nextFree("10.0.0.0/29", taken, 6)).toEqual({ ip: "10.0.0.2", cursor: 2 });
  const full = new Set(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]);
  expect(nextFree("10.0.0.0/29", full, 0)).toBeUndefined();
});

test("parsePort() reads [IP:]HOST:CONTAINER[/proto] and rejects the rest", () => {
  expect(parsePort("8080:80")).toEqual({ proto: "tcp", hostPort: 8080, containerPort: 80 });
  expect(parsePort("127.0.0.1:53:53/udp")).toEqual({ proto: "udp", hostIp: "127.0.0.1", hostPort: 53, containerPort: 53 });
  expect(parsePort("0.0.0.0:1:65535")).toEqual({ proto: "tcp", hostPort: 1, containerPort: 65535 });
  expect(() => parsePort("70000:80")).toThrow("-p 70000:80: the host port 70000 is out of range (1-65535)");
  expect(() => parsePort("0:80")).toThrow(/out of range/);
  expect(() => parsePort("80")).toThrow(/expected \[IP:\]HOST:CONTAINER/);
  expect(() => parsePort("a:80")).toThrow(/not a number/);
  expect(() => parsePort("8080:80/sctp")).toThrow(/expected/);
  expect(() => parsePort("1.2.3:8080:80")).toThrow(/not an IPv4 address/);
});

test("ports clash on the same protocol and port unless both name different addresses", () => {
  const p = (s: string) => parsePort(s);
  expect(portsClash(p("8080:80"), p("127.0.0.1:8080:81"))).toBe(true);
  expect(portsClash(p("127.0.0.2:8080:80"), p("127.0.0.1:8080:81"))).toBe(false);
  expect(portsClash(p("8080:80"), p("8080:80/udp"))).toBe(false);
  expect(() => checkPorts([p("8080:80"), p("8080:81")])).toThrow(/given twice/);
});

test("parseNetMode() knows bridge, none, host, container:NAME and cni:NAME", () => {
  expect(parseNetMode("bridge")).toEqual({ kind: "bridge" });
  expect(parseNetMode("container:web")).toEqual({ kind: "container", name: "web" });
  expect(parseNetMode("cni:mynet")).toEqual({ kind: "cni", name: "mynet" });
  expect(() => parseNetMode("overlay")).toThrow(/unknown network/);
  expect(() => parseNetMode("container:")).toThrow(/unknown network/);
});

test("baseScript() touches only its own table and is idempotent (flush, then add)", () => {
  const script = baseScript({ table: "dokrust", bridge: "dokrust0", subnet: "10.88.0.0/16", guardedUplinks: ["eth9"] });
  for (const line of script.trim().split("\n")) expect(line).toMatch(/^(add|flush) (table|chain|map|rule) ip dokrust\b/);
  expect(script).toContain('ip saddr 10.88.0.0/16 ip daddr != 10.88.0.0/16 oifname != "dokrust0" masquerade');
  expect(script).toContain('add rule ip dokrust forward iifname "eth9" oifname != "dokrust0" drop');
  expect(script.indexOf("flush chain ip dokrust forward")).toBeLessThan(script.indexOf("add rule ip dokrust forward"));
});

test("publishScript() creates one element per port; withdrawScript() deletes them by key", () => {
  const rules = [
    { proto: "tcp" as const, hostPort: 8080, containerIp: "10.88.0.2", containerPort: 80 },
    { proto: "udp" as const, hostIp: "127.0.0.1", hostPort: 53, containerIp: "10.88.0.2", containerPort: 5353 },
  ];
  expect(publishScript("dokrust", rules)).toBe(
    "create element ip dokrust tcp_any { 8080 : 10.88.0.2 . 80 }\ncreate element ip dokrust udp_ip { 127.0.0.1 . 53 : 10.88.0.2 . 5353 }\n",
  );
  expect(withdrawScript("dokrust", rules)).toBe("delete element ip dokrust tcp_any { 8080 }\ndelete element ip dokrust udp_ip { 127.0.0.1 . 53 }\n");
});

test("hostsText() lists the container first, then the others", () => {
  const text = hostsText({ ip: "10.88.0.3", names: ["web", "dokka"] }, [{ ip: "10.88.0.2", names: ["", "db"] }], "dokka");
  expect(text).toBe("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.88.0.3\tweb dokka\n10.88.0.2\tdb\n");
});

test("containerResolvConf() keeps real resolvers and replaces a loopback-only one", () => {
  expect(containerResolvConf("search x\nnameserver 10.0.0.53\nnameserver 127.0.0.53\n", undefined)).toEqual({ text: "search x\nnameserver 10.0.0.53\n" });
  expect(containerResolvConf("nameserver 127.0.0.53\n", "nameserver 192.0.2.53\n")).toEqual({ text: "nameserver 192.0.2.53\n" });
  const fallback = containerResolvConf("nameserver 127.0.0.53\noptions edns0\n", undefined);
  expect(fallback.text).toBe("options edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
  expect(fallback.notice).toContain("loopback");
});

test("hostVethName() fits IFNAMSIZ", () => {
  expect(hostVethName("0123456789abcdef0123")).toBe("dk0123456789ab");
  expect(hostVethName("not-hex").length).toBeLessThanOrEqual(15);
});
