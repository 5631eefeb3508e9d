// Umbrella header: the whole public API of shoal in one include, for
// applications that would rather not pick components
// (`#include <shoal/shoal.h>` once installed). Code inside shoal includes the
// component headers it uses instead.
//
// Thread-safety: see each included header.
#ifndef SHOAL_SHOAL_H_
#define SHOAL_SHOAL_H_

#include "base/buffer.h"
#include "base/memory.h"
#include "base/result.h"
#include "base/status.h"
#include "base/types.h"
#include "codecs/byte_codec.h"
#include "codecs/image_codec.h"
#include "format/chunk.h"
#include "format/copy.h"
#include "format/dataset.h"
#include "format/lock.h"
#include "format/schema.h"
#include "format/staged_write.h"
#include "format/store.h"
#include "format/verify.h"
#include "loader/config.h"
#include "loader/controller.h"
#include "loader/copy.h"
#include "loader/image_transform.h"
#include "loader/ingestor.h"
#include "loader/loader.h"
#include "loader/pipeline.h"
#include "loader/sampler.h"
#include "loader/source.h"
#include "loader/video_sample.h"
#include "video/video.h"

#endif  // SHOAL_SHOAL_H_
