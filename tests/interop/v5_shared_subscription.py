"""MQTT 5: a shared subscription `$share/workers/...` splits messages between two paho
subscribers: each gets a share, together they get every message, none twice.
"""

from paho_peer import Peer, check, got

COUNT = 10
TOPIC = "interop/paho/jobs"
END = "interop/paho/jobs-end"

workers = [Peer(f"paho-worker-{n}") for n in (1, 2)]
for worker in workers:
    worker.connect()
    worker.subscribe(f"$share/workers/{TOPIC}", 1)
    # Not shared: every worker gets the end marker, after its share of the jobs.
    worker.subscribe(END, 1)

publisher = Peer("paho-jobs-pub")
publisher.connect()
for n in range(COUNT):
    publisher.publish(TOPIC, f"job {n}", 1)
publisher.publish(END, "end", 1)
publisher.disconnect()

shares = []
for worker in workers:
    share = []
    while True:
        message = worker.next_message("jobs and the end marker")
        if message.topic == END:
            break
        check(message.topic == TOPIC, f"unexpected topic {message.topic}")
        share.append(message.payload.decode())
    worker.disconnect()
    shares.append(share)

everything = sorted(job for share in shares for job in share)
print(f"shares: {[len(share) for share in shares]}")
got(f"total={len(everything)} distinct={len(set(everything))} every_worker_got_some={all(shares)}")
check(everything == sorted(f"job {n}" for n in range(COUNT)), f"jobs received: {everything}")
check(all(shares), f"a worker got nothing: {shares}")
