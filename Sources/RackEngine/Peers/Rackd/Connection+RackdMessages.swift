// rackd — a rackd message (option 253, docs/protocol.md) that arrived on a segment of a connection rackd
// holds. The segment itself is consumed: it never reaches the socket.

extension Connection {
    mutating func handleRackdMessage(_ message: RacksMessage, wire: FlowKey, _ context: inout ConnectionContext)
        -> ConnectionActions
    {
        var actions = ConnectionActions(verdict: .drop)
        let now = context.now
        switch message {
        case .hello, .roam, .roamResponse:
            break  // only meaningful on a SYN or SYN-ACK
        case .key(let publicKey, let haveYourKey, let wantReply):
            handleKey(publicKey, haveYourKey: haveYourKey, wantReply: wantReply, now: now, into: &actions)
        case .challenge(let nonce):
            handleChallenge(nonce, &context, into: &actions)
        case .response(let nonce, let mac):
            handleResponse(nonce: nonce, mac: mac, now: now, into: &actions)
        case .confirm(let mac):
            let roamConfirmed = handleRoamConfirm(mac: mac, wire: wire, now: now, into: &actions)
            if !roamConfirmed && wire == wireFlow {
                handleConfirm(mac: mac, now: now, into: &actions)
            }
        }
        return actions
    }
}
