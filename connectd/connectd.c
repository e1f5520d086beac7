/* connectd.c: (stub) */
#include "connectd.h"
