"""moto's server (S3 + SQS emulator) with one race of its SQS queue closed.

moto 5's `Queue.delete_message` (moto/sqs/models.py) rebuilds the queue's message list
without holding the queue's lock, while its server answers requests on many threads.
A DeleteMessage answered at the same time as another DeleteMessage or a SendMessage can
then bring a deleted message back or drop a sent one; real SQS has no such race. The
test harness starts moto through this file so that the queue counts its tests assert
measure Paraflow, not moto. Arguments are `moto_server`'s.
"""

import functools
import sys

from moto.server import main
from moto.sqs.models import Queue

_unlocked_delete = Queue.delete_message


@functools.wraps(_unlocked_delete)
def _delete_message(self, receipt_handle):
    # The same (reentrant) lock `Queue.add_message` takes.
    with self._messages_lock:
        return _unlocked_delete(self, receipt_handle)


Queue.delete_message = _delete_message

if __name__ == "__main__":
    sys.exit(main())
