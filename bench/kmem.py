"""kmem.py: memory of N idle tunnels through connectd, user and kernel.

usage: python3 bench/kmem.py CONNECTD [N]   (as root; bench/out/loadgen built)
Prints the growth of the kernel's slab and of connectd's RSS and fds with N
(default 5000) idle tunnels open, and /proc/net/sockstat before and after.
The slab figure covers every socket of the test: the load generator's,
connectd's two per tunnel, and the origin's."""
import subprocess, json, time, os, sys
HERE = os.path.dirname(os.path.abspath(__file__))
LG = os.path.join(HERE, "out", "loadgen")
CONNECTD = sys.argv[1] if len(sys.argv) > 1 else "build/connectd/connectd"
def meminfo():
    d={}
    for l in open("/proc/meminfo"):
        k,v=l.split(":"); d[k]=int(v.split()[0])
    return d
def sockstat():
    return open("/proc/net/sockstat").read()
o=subprocess.Popen([LG,"origin","1000"],stdin=subprocess.PIPE,stdout=subprocess.PIPE)
ports=json.loads(o.stdout.readline())
conf="/tmp/kmem.conf"
open(conf,"w").write("http_port 127.0.0.1:39123\nhttp_access allow all\naccess_log none\nshutdown_lifetime 0 seconds\n")
cd=subprocess.Popen([CONNECTD,"-f",conf],stderr=subprocess.DEVNULL)
time.sleep(1)
def fds(pid): return len(os.listdir("/proc/%d/fd"%pid))
def rss(pid):
    for l in open("/proc/%d/status"%pid):
        if l.startswith("VmRSS"): return int(l.split()[1])
N=int(sys.argv[2]) if len(sys.argv)>2 else 5000
subprocess.run("sync; echo 2 > /proc/sys/vm/drop_caches", shell=True)
time.sleep(0.5)
m0=meminfo(); s0=sockstat(); f0=fds(cd.pid); r0=rss(cd.pid)
p=subprocess.Popen([LG,"idle","39123",str(ports["echo"]),str(N),"64","8","60"],stdin=subprocess.PIPE,stdout=subprocess.PIPE)
print(p.stdout.readline().decode().strip()[:120])
time.sleep(2)
m1=meminfo(); s1=sockstat(); f1=fds(cd.pid); r1=rss(cd.pid)
for k in ("MemFree","Slab","SUnreclaim","SReclaimable","KernelStack","PageTables"):
    print(k, m1[k]-m0[k], "KB total; per tunnel %.2f KB"%((m1[k]-m0[k])/N))
print("connectd fds", f0, "->", f1, "per tunnel", (f1-f0)/N)
print("connectd RSS KB", r0, "->", r1, "per tunnel %.2f KB"%((r1-r0)/N))
print(s0); print(s1)
p.stdin.close(); p.wait()
cd.terminate(); o.stdin.close(); o.wait()
