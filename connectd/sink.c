/* sink.c: (stub) */
#include "connectd.h"
